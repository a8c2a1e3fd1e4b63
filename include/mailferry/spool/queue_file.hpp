// queue_file.hpp: the envelope file format — typed records, a version, and an END record
// (Postfix's record.c), so a torn or foreign file is detected and quarantined, never half used.
// Pure encode/decode: no file access; fuzzable.
#pragma once

#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"
#include "mailferry/message/envelope.hpp"

namespace mailferry::spool {

// Records, one per line: "<TYPE> <value>\n", values escaped so that any byte round-trips.
// First record "V 1", last record "E <count of records before it>".
std::string encode_envelope(const message::Envelope& e);
Result<message::Envelope> decode_envelope(std::string_view bytes);

}  // namespace mailferry::spool
