// outcome.hpp: what the upstream's answers mean for each recipient — delivered, deferred (retry on
// the RetrySchedule) or bounced (permanent: DSN to the sender). The one place that decides it, for
// real replies and for the synthetic ones ClientSession makes (SIZE, SMTPUTF8).
// Pure: it never touches the spool; the scheduler applies the verdicts.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "mailferry/smtp/client_session.hpp"

namespace mailferry::delivery {

enum class Verdict { delivered, deferred, bounced };

struct RecipientOutcome {
  Verdict verdict = Verdict::deferred;
  std::string reply;   // the deciding reply's summary ("550 5.1.1 No such user"), or why none came

  friend bool operator==(const RecipientOutcome&, const RecipientOutcome&) = default;
};

// One outcome per recipient, in the order the recipients were given to ClientSession:
//   MAIL 4xx → all deferred; MAIL 5xx → all bounced;
//   RCPT 4xx → deferred; RCPT 5xx → bounced;
//   RCPT 2xx → the DATA / final reply decides: 2xx delivered, 4xx deferred, 5xx bounced.
// A reply that is missing or makes no sense is deferred: at least once, never less — only a
// 2xx counts as delivered and only a 5xx as permanent.
std::vector<RecipientOutcome> classify(const smtp::MessageResult& result, std::size_t recipient_count);

// The connection failed before the message was answered (no MessageDone): every recipient is
// deferred with this reason.
RecipientOutcome transport_failure(std::string_view why);

}  // namespace mailferry::delivery
