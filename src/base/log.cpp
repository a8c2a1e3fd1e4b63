// log.cpp: formatting of log records; the default sink.
#include "mailferry/base/log.hpp"

#include <cstdio>
#include <mutex>

namespace mailferry::log {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  return false;
}

// Control bytes never reach a log line raw: a hostile client cannot forge a second event.
void append_escaped(std::string& out, std::string_view v) {
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

std::string_view level_name(Level l) {
  switch (l) {
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
  }
  return "info";
}

std::mutex sink_mutex;
Sink& current_sink() {
  static Sink sink = [](const Record& r) {
    std::string line = format_text(r);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
  return sink;
}

}  // namespace

std::string format_text(const Record& r) {
  std::string out(r.event);
  if (!r.id.empty()) {
    out += " id=";
    out += r.id;
  }
  for (const auto& f : r.fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (needs_quotes(f.value)) {
      out += '"';
      append_escaped(out, f.value);
      out += '"';
    } else {
      out += f.value;
    }
  }
  return out;
}

std::string format_json(const Record& r, std::string_view time_iso8601) {
  std::string out = "{\"time\":\"";
  append_escaped(out, time_iso8601);
  out += "\",\"level\":\"";
  out += level_name(r.level);
  out += "\",\"event\":\"";
  append_escaped(out, r.event);
  out += '"';
  if (!r.id.empty()) {
    out += ",\"queue_id\":\"";
    append_escaped(out, r.id);
    out += '"';
  }
  for (const auto& f : r.fields) {
    out += ",\"";
    append_escaped(out, f.key);
    out += "\":\"";
    append_escaped(out, f.value);
    out += '"';
  }
  out += '}';
  return out;
}

void set_sink(Sink sink) {
  std::lock_guard lock(sink_mutex);
  current_sink() = std::move(sink);
}

void event(std::string_view name, std::string_view id, std::initializer_list<Field> fields, Level level) {
  Record r{level, name, id, std::vector<Field>(fields)};
  std::lock_guard lock(sink_mutex);
  current_sink()(r);
}

void warning(std::string_view name, std::initializer_list<Field> fields) {
  event(name, {}, fields, Level::warning);
}

void error(std::string_view name, std::initializer_list<Field> fields) {
  event(name, {}, fields, Level::error);
}

}  // namespace mailferry::log
