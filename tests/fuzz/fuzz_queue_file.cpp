// fuzz_queue_file.cpp: the envelope decoder (spool::decode_envelope) fed damaged or foreign files.
// Invariant: a file either decodes or is an Error with a one-line message; what decodes
// re-encodes to a file that decodes to the same envelope, and encoding is then stable.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "mailferry/spool/queue_file.hpp"

using namespace mailferry;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto decoded = spool::decode_envelope(bytes);
  if (!decoded) {
    const std::string& msg = decoded.error().message;
    FUZZ_CHECK(!msg.empty() && msg.find('\n') == std::string::npos, "decode error is not one line");
    return 0;
  }
  const std::string encoded = spool::encode_envelope(*decoded);
  const auto again = spool::decode_envelope(encoded);
  FUZZ_CHECK(again.ok(), "a re-encoded envelope does not decode");
  FUZZ_CHECK(*again == *decoded, "a re-encoded envelope decodes differently");
  FUZZ_CHECK(spool::encode_envelope(*again) == encoded, "encoding is not stable");
  return 0;
}
