// outcome.cpp: per-recipient classification of an upstream transaction.
#include "mailferry/delivery/outcome.hpp"

#include <optional>
#include <string>

namespace mailferry::delivery {

namespace {

// 2xx and 5xx are the only definite answers; 4xx and anything unexpected mean "try again".
RecipientOutcome judge(const smtp::Reply& reply) {
  const Verdict v = reply.positive() ? Verdict::delivered : reply.permanent() ? Verdict::bounced : Verdict::deferred;
  return {v, reply.summary()};
}

}  // namespace

std::vector<RecipientOutcome> classify(const smtp::MessageResult& result, std::size_t recipient_count) {
  if (!result.mail) return std::vector<RecipientOutcome>(recipient_count, transport_failure("no reply to MAIL FROM"));
  if (!result.mail->positive()) {
    // A 2xx here can only be delivered through the recipients; a refused MAIL covers them all.
    RecipientOutcome all = judge(*result.mail);
    if (all.verdict == Verdict::delivered) all.verdict = Verdict::deferred;
    return std::vector<RecipientOutcome>(recipient_count, all);
  }

  std::vector<RecipientOutcome> out;
  out.reserve(recipient_count);
  for (std::size_t i = 0; i < recipient_count; ++i) {
    if (i >= result.rcpt.size()) {
      out.push_back(transport_failure("no reply to RCPT TO"));
      continue;
    }
    const smtp::Reply& rcpt = result.rcpt[i];
    if (!rcpt.positive()) {
      out.push_back(judge(rcpt));
      continue;
    }
    // Accepted recipients share the fate of the data: the final reply (or a refused DATA).
    if (!result.data) {
      out.push_back(transport_failure("no reply to the message data"));
      continue;
    }
    out.push_back(judge(*result.data));
  }
  return out;
}

RecipientOutcome transport_failure(std::string_view why) { return {Verdict::deferred, std::string(why)}; }

}  // namespace mailferry::delivery
