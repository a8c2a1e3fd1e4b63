// log.hpp: one line per event, queue id first, key=value (or one JSON object per line).
// Formatting is pure; where lines go (stderr, with or without time stamps or syslog
// priorities) is the sink that the process installs. Secrets cannot be passed as fields.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mailferry::log {

enum class Level { info, warning, error };

struct Field {
  std::string_view key;
  std::string value;
};

struct Record {
  Level level = Level::info;
  std::string_view event;   // "received", "attempt", "delivered", "deferred", "bounced", …
  std::string_view id;      // queue id, or empty for events not about one message
  std::vector<Field> fields;
};

// "received id=9K2F7QX client=192.0.2.7 nrcpt=2": values with spaces, quotes or '=' are quoted.
std::string format_text(const Record& r);
// {"time":"…","level":"info","event":"received","queue_id":"…","client":"…"}
std::string format_json(const Record& r, std::string_view time_iso8601);

using Sink = std::function<void(const Record&)>;
// Installs the process-wide sink; the default writes format_text() lines to stderr.
void set_sink(Sink sink);

void event(std::string_view name, std::string_view id, std::initializer_list<Field> fields,
           Level level = Level::info);
void warning(std::string_view name, std::initializer_list<Field> fields);
void error(std::string_view name, std::initializer_list<Field> fields);

}  // namespace mailferry::log
