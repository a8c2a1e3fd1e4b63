// config.tests.cpp: networks (parse_network, Network::contains) and listen addresses.
#include "mailferry/config/config.hpp"

#include <arpa/inet.h>

#include <array>
#include <catch2/catch.hpp>
#include <string>

using namespace mailferry::config;

namespace {

// An address as the listener sees it: 4 bytes for v4, 16 for v6 (including ::ffff:a.b.c.d).
struct Address {
  std::array<unsigned char, 16> bytes{};
  bool v6 = false;
};

Address address(const std::string& text) {
  Address a;
  if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) return a;
  REQUIRE(inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1);
  a.v6 = true;
  return a;
}

bool contains(const std::string& network, const std::string& addr) {
  auto n = parse_network(network);
  REQUIRE(n.ok());
  const Address a = address(addr);
  return n->contains(a.bytes.data(), a.v6);
}

}  // namespace

TEST_CASE("Network::contains", "[config][network]") {
  auto [network, addr, expected] = GENERATE(table<std::string, std::string, bool>({
      // v4
      {"127.0.0.0/8", "127.0.0.1", true},
      {"127.0.0.0/8", "127.255.255.255", true},
      {"127.0.0.0/8", "128.0.0.1", false},
      {"10.0.0.0/8", "11.0.0.0", false},
      {"192.168.1.0/24", "192.168.1.77", true},
      {"192.168.1.0/24", "192.168.2.77", false},
      {"172.16.0.0/12", "172.31.255.255", true},   // prefix not on a byte boundary
      {"172.16.0.0/12", "172.32.0.0", false},
      // /32 and bare addresses
      {"192.0.2.7/32", "192.0.2.7", true},
      {"192.0.2.7/32", "192.0.2.8", false},
      {"192.0.2.7", "192.0.2.7", true},
      // /0
      {"0.0.0.0/0", "203.0.113.9", true},
      {"0.0.0.0/0", "::ffff:203.0.113.9", true},
      {"0.0.0.0/0", "2001:db8::1", false},           // a v4 network never holds a native v6 address
      {"::/0", "2001:db8::1", true},
      {"::/0", "203.0.113.9", true},                 // as ::ffff:203.0.113.9
      // v6
      {"::1/128", "::1", true},
      {"::1/128", "::2", false},
      {"::1", "::1", true},
      {"fd00::/8", "fd12:3456::1", true},
      {"fd00::/8", "fe80::1", false},
      {"2001:db8::/33", "2001:db8:7fff::1", true},
      {"2001:db8::/33", "2001:db8:8000::1", false},
      // v4-mapped v6 addresses, as a dual-stack socket reports v4 clients
      {"127.0.0.0/8", "::ffff:127.0.0.1", true},
      {"10.0.0.0/8", "::ffff:10.1.2.3", true},
      {"10.0.0.0/8", "::ffff:11.1.2.3", false},
      {"127.0.0.0/8", "::1", false},                  // loopback v6 is not v4 loopback
      {"127.0.0.0/8", "::127.0.0.1", false},          // v4-compatible, not v4-mapped
      {"::ffff:10.0.0.0/104", "10.9.9.9", true},      // a v4 address against a mapped v6 network
      {"::ffff:10.0.0.0/104", "11.9.9.9", false},
      {"::1/128", "127.0.0.1", false},
  }));
  CAPTURE(network, addr);
  CHECK(contains(network, addr) == expected);
}

TEST_CASE("parse_network accepts CIDR and bare addresses", "[config][network]") {
  auto [text, v6, prefix] = GENERATE(table<std::string, bool, int>({
      {"127.0.0.0/8", false, 8},
      {"0.0.0.0/0", false, 0},
      {"192.0.2.7", false, 32},
      {"::1/128", true, 128},
      {"::/0", true, 0},
      {"fd00::", true, 128},
      {"2001:db8::/32", true, 32},
  }));
  CAPTURE(text);
  auto n = parse_network(text);
  REQUIRE(n.ok());
  CHECK(n->text == text);
  CHECK(n->v6 == v6);
  CHECK(n->prefix == prefix);
}

TEST_CASE("parse_network refuses junk, long prefixes and host bits", "[config][network]") {
  auto [text, message] = GENERATE(table<std::string, std::string>({
      {"", R"("" is empty (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"10.0.0.0/33", R"("10.0.0.0/33" has a prefix length over 32 (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"::/129", R"("::/129" has a prefix length over 128 (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"10.0.0.0/-1", R"("10.0.0.0/-1" has no valid prefix length after "/" (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"10.0.0.0/8/8", R"("10.0.0.0/8/8" has no valid prefix length after "/" (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"10.0.0/8", R"("10.0.0/8" is not an IP address or network (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"010.0.0.0/8", R"("010.0.0.0/8" is not an IP address or network (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {" 10.0.0.0/8", R"(" 10.0.0.0/8" is not an IP address or network (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"fe80::1%eth0/64", R"("fe80::1%eth0/64" is not an IP address or network (expected a network like "10.0.0.0/8" or "fd00::/8"))"},
      {"192.168.1.10/24", R"("192.168.1.10/24" has host bits set after /24 (expected the network "192.168.1.0/24", or a /32 for one host))"},
      {"172.20.0.0/11", R"("172.20.0.0/11" has host bits set after /11 (expected the network "172.0.0.0/11", or a /32 for one host))"},
      {"fd00::1/8", R"("fd00::1/8" has host bits set after /8 (expected the network "fd00::/8", or a /128 for one host))"},
  }));
  CAPTURE(text);
  auto n = parse_network(text);
  REQUIRE_FALSE(n.ok());
  CHECK(n.error().message == message);
}

TEST_CASE("parse_listen_address", "[config][listen]") {
  auto [text, host, port] = GENERATE(table<std::string, std::string, int>({
      {"0.0.0.0:587", "0.0.0.0", 587},
      {"127.0.0.1:25", "127.0.0.1", 25},
      {"[::]:465", "::", 465},
      {"[::1]:2525", "::1", 2525},
      {"[::ffff:127.0.0.1]:1", "::ffff:127.0.0.1", 1},
      {"10.1.2.3:65535", "10.1.2.3", 65535},
  }));
  CAPTURE(text);
  auto l = parse_listen_address(text);
  REQUIRE(l.ok());
  CHECK(l->address == text);
  CHECK(l->host == host);
  CHECK(l->port == port);
}

TEST_CASE("parse_listen_address refuses", "[config][listen]") {
  auto [text, why] = GENERATE(table<std::string, std::string>({
      {"", "is empty"},
      {"0.0.0.0", "has no \":port\""},
      {"0.0.0.0:", "has no valid port number"},
      {"0.0.0.0:smtp", "has no valid port number"},
      {"0.0.0.0:-1", "has no valid port number"},
      {"0.0.0.0:0", "has a port outside 1..65535"},
      {"0.0.0.0:65536", "has a port outside 1..65535"},
      {"0.0.0.0:1000000", "has no valid port number"},
      {":587", "has a host name or junk where an IP address belongs"},
      {"localhost:587", "has a host name or junk where an IP address belongs"},
      {"*:587", "has a host name or junk where an IP address belongs"},
      {"::1:587", "needs brackets around its IPv6 address"},
      {"[::1]587", "has no \"]:port\" after the IPv6 address"},
      {"[::1]", "has no \"]:port\" after the IPv6 address"},
      {"[127.0.0.1]:587", "does not hold an IPv6 address in its brackets"},
  }));
  CAPTURE(text);
  auto l = parse_listen_address(text);
  REQUIRE_FALSE(l.ok());
  CHECK(l.error().message == "\"" + text + "\" " + why +
                                 R"( (expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))");
}

TEST_CASE("enum spellings are the TOML values", "[config]") {
  CHECK(to_string(ListenTls::starttls) == "starttls");
  CHECK(to_string(ListenTls::implicit) == "implicit");
  CHECK(to_string(ListenTls::none) == "none");
  CHECK(to_string(ListenAuth::required) == "required");
  CHECK(to_string(ListenAuth::none) == "none");
  CHECK(to_string(UpstreamTls::none) == "none");
  CHECK(to_string(UpstreamAuth::auto_) == "auto");
  CHECK(to_string(UpstreamAuth::xoauth2) == "xoauth2");
  CHECK(to_string(LogFormat::json) == "json");
  CHECK(to_string(OAuthProvider::custom) == "custom");
}
