// reply_parser.hpp: ReplyParser turns the bytes an SMTP server sends into complete Reply values
// (RFC 5321 §4.2, with RFC 3463 enhanced codes split off). It is incremental: bytes arrive in any
// chunks and a reply is yielded only once its last line is complete.
// Never touches a socket or the clock, never throws on server input: bad input is a sticky Error.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"
#include "mailferry/smtp/reply.hpp"

namespace mailferry::smtp {

class ReplyParser {
 public:
  // `max_line` bounds one line's text without its line ending; `max_lines` bounds one multi-line reply.
  explicit ReplyParser(std::size_t max_line = 4096, std::size_t max_lines = 100);

  // Appends bytes as they came off the wire. Ignored once the parser has failed.
  void feed(std::string_view bytes);

  // The next complete reply; nullopt when more bytes are needed. An Error (non-digit code, a code
  // that changes between the lines of one reply, a line or reply over its bound) is sticky: every
  // later call returns it again, because the byte stream can no longer be trusted to be in step.
  //
  // Lines end in CRLF, but a bare LF is accepted too: some servers send it and nothing is gained by
  // refusing their answers. Control bytes in the text become '?' so that a reply can be copied into
  // logs, queue listings and bounces as it is.
  Result<std::optional<Reply>> next();

  bool failed() const { return error_.has_value(); }
  // Bytes received but not yet part of a yielded reply (for a driver that wants to notice a server
  // talking out of turn).
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  Result<std::optional<Reply>> fail(std::string message);
  // One complete line without its ending; returns an error message or empty when the line is fine.
  std::string take_line(std::string_view line, bool& reply_complete);

  std::size_t max_line_;
  std::size_t max_lines_;
  std::string buffer_;          // unparsed bytes start at consumed_
  std::size_t consumed_ = 0;
  std::size_t scanned_ = 0;     // no '\n' in buffer_[consumed_, scanned_): byte-by-byte feeding stays linear
  Reply pending_;               // lines of the reply being assembled
  std::optional<Error> error_;
};

}  // namespace mailferry::smtp
