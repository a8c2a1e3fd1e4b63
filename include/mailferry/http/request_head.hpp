// request_head.hpp: the head of one HTTP/1.x request (RFC 9112 §2–5), parsed incrementally and
// within fixed bounds, for the metrics endpoint. Pure: bytes in, a verdict out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace mailferry::http {

struct HeadLimits {
  std::size_t max_head = 8192;   // request line and fields together, with their line ends
  std::size_t max_fields = 64;
};

class RequestHeadParser {
 public:
  enum class Status { need_more, done, invalid };

  explicit RequestHeadParser(HeadLimits limits = {}) : limits_(limits) {}

  // Bytes as they arrive; anything after the head (a body) is ignored: the endpoint answers GET
  // and HEAD only, and closes the connection after each response.
  void feed(std::string_view bytes);

  Status status() const { return status_; }
  // With invalid: the status code to answer (400, 414 URI too long, 431 fields too large, 505).
  int error_status() const { return error_status_; }
  const std::string& method() const { return method_; }
  const std::string& target() const { return target_; }   // as sent: "/metrics", "/readyz?x=1"
  // The target's path without a query string.
  std::string_view path() const;

 private:
  void parse_head(std::string_view head);
  void fail(int status);

  HeadLimits limits_;
  Status status_ = Status::need_more;
  int error_status_ = 0;
  std::string buffer_;
  std::string method_, target_;
};

// A complete response with Content-Length and "Connection: close"; for HEAD, the same head and
// no body (RFC 9110 §9.3.2).
std::string response(int status, std::string_view content_type, std::string_view body, bool head_only = false,
                     std::string_view extra_fields = {});

}  // namespace mailferry::http
