// reply.cpp: wire formatting of replies.
#include "mailferry/smtp/reply.hpp"

#include <string>

namespace mailferry::smtp {

std::string Reply::wire() const {
  std::string out;
  const std::string code_text = std::to_string(code);
  if (lines.empty()) {
    out = code_text;
    if (!enhanced.empty()) out += ' ' + enhanced;
    out += "\r\n";
    return out;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += code_text;
    out += (i + 1 == lines.size()) ? ' ' : '-';
    if (!enhanced.empty()) {
      out += enhanced;
      out += ' ';
    }
    out += lines[i];
    out += "\r\n";
  }
  return out;
}

std::string Reply::summary() const {
  std::string out = std::to_string(code);
  if (!enhanced.empty()) out += ' ' + enhanced;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += i == 0 ? " " : " / ";
    out += lines[i];
  }
  return out;
}

Reply make_reply(int code, std::string_view enhanced, std::string_view text) {
  return Reply{code, std::string(enhanced), {std::string(text)}};
}

}  // namespace mailferry::smtp
