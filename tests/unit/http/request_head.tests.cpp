// request_head.tests.cpp: HTTP request heads for the metrics endpoint, fed whole and byte by byte.
#include <catch2/catch.hpp>

#include <string>

#include "mailferry/http/request_head.hpp"

using namespace mailferry::http;
using Status = RequestHeadParser::Status;

namespace {

RequestHeadParser whole(const std::string& in, HeadLimits limits = {}) {
  RequestHeadParser p(limits);
  p.feed(in);
  return p;
}

RequestHeadParser by_byte(const std::string& in, HeadLimits limits = {}) {
  RequestHeadParser p(limits);
  for (char c : in) p.feed(std::string_view(&c, 1));
  return p;
}

}  // namespace

TEST_CASE("a scraper's request is parsed whole and byte by byte", "[http]") {
  const std::string req = GENERATE(as<std::string>{},
                                   "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n",
                                   "GET /metrics?x=1 HTTP/1.0\n\n", "\r\nGET /metrics HTTP/1.1\r\n\r\nbody");
  for (const auto& p : {whole(req), by_byte(req)}) {
    REQUIRE(p.status() == Status::done);
    CHECK(p.method() == "GET");
    CHECK(p.path() == "/metrics");
  }
}

TEST_CASE("an incomplete head asks for more", "[http]") {
  CHECK(whole("GET /metrics HTTP/1.1\r\nHost: x\r\n").status() == Status::need_more);
}

TEST_CASE("malformed and oversized heads get the status to answer", "[http]") {
  auto [input, status] = GENERATE(table<std::string, int>({
      {"GET /metrics\r\n\r\n", 400},
      {"GET  /metrics HTTP/1.1\r\n\r\n", 400},
      {"GET /metrics HTTP/2.0\r\n\r\n", 505},
      {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", 400},          // whitespace before the colon
      {"GET /metrics HTTP/1.1\r\n folded\r\n\r\n", 400},           // obsolete line folding
      {"GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", 400},
      {"GET /met\x01rics HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET /metrics HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400},
  }));
  CAPTURE(input);
  for (const auto& p : {whole(input), by_byte(input)}) {
    CHECK(p.status() == Status::invalid);
    CHECK(p.error_status() == status);
  }
}

TEST_CASE("the head's size and field count are bounded", "[http]") {
  HeadLimits limits{256, 4};
  CHECK(whole("GET /" + std::string(300, 'a') + " HTTP/1.1\r\n\r\n", limits).error_status() == 414);
  CHECK(by_byte("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n", limits).error_status() == 431);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) many += "X" + std::to_string(i) + ": 1\r\n";
  CHECK(whole(many + "\r\n", limits).error_status() == 431);
  // Feeding more after the verdict changes nothing.
  auto p = whole("GET / HTTP/1.1\r\n\r\n");
  p.feed("garbage");
  CHECK(p.status() == Status::done);
}

TEST_CASE("responses carry their length and close the connection", "[http]") {
  const auto r = response(503, "text/plain", "not ready\n");
  CHECK(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0);
  CHECK(r.find("Content-Length: 10\r\n") != std::string::npos);
  CHECK(r.find("Connection: close\r\n") != std::string::npos);
  CHECK(r.substr(r.size() - 14) == "\r\n\r\nnot ready\n");
  const auto head = response(200, "text/plain", "ok\n", true);
  CHECK(head.find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
}
