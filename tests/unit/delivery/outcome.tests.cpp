#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mailferry/delivery/outcome.hpp"

using namespace mailferry::delivery;
using mailferry::smtp::make_reply;
using mailferry::smtp::MessageResult;
using mailferry::smtp::Reply;

namespace {

Reply r(int code) { return make_reply(code, code < 300 ? "2.0.0" : code < 500 ? "4.0.0" : "5.0.0", "text"); }

// "D"elivered, "T"emporary (deferred), "B"ounced per recipient.
std::string verdicts(const std::vector<RecipientOutcome>& v) {
  std::string out;
  for (const auto& o : v) {
    switch (o.verdict) {
      case Verdict::delivered: out += 'D'; break;
      case Verdict::deferred: out += 'T'; break;
      case Verdict::bounced: out += 'B'; break;
    }
  }
  return out;
}

MessageResult result(std::optional<int> mail, std::vector<int> rcpt, std::optional<int> data) {
  MessageResult m;
  if (mail) m.mail = r(*mail);
  for (int c : rcpt) m.rcpt.push_back(r(c));
  if (data) m.data = r(*data);
  return m;
}

}  // namespace

TEST_CASE("classify: each recipient's answer is honoured", "[delivery][outcome]") {
  struct Case {
    std::optional<int> mail;
    std::vector<int> rcpt;
    std::optional<int> data;
    std::size_t count;
    const char* expected;
  };
  const auto c = GENERATE(values<Case>({
      {250, {250}, 250, 1, "D"},
      {250, {250, 550, 450}, 250, 3, "DBT"},
      {250, {250, 251}, 250, 2, "DD"},
      {451, {}, std::nullopt, 3, "TTT"},           // MAIL 4xx: all deferred
      {550, {}, std::nullopt, 2, "BB"},            // MAIL 5xx: all bounced
      {552, {}, std::nullopt, 1, "B"},             // synthetic SIZE refusal
      {250, {250, 550}, 554, 2, "BB"},             // DATA refused permanently
      {250, {250, 550}, 451, 2, "TB"},             // DATA refused for now
      {250, {250, 250}, 452, 2, "TT"},             // final reply 4xx
      {250, {250, 450}, 552, 2, "BT"},             // final reply 5xx
      {250, {550, 550}, std::nullopt, 2, "BB"},    // nobody accepted: no DATA
      {250, {250}, std::nullopt, 1, "T"},          // the data was never answered
      {250, {250}, std::nullopt, 3, "TTT"},        // RCPT replies missing
      {std::nullopt, {}, std::nullopt, 2, "TT"},   // nothing answered
      {250, {}, std::nullopt, 0, ""},
  }));
  CAPTURE(c.expected);
  CHECK(verdicts(classify(result(c.mail, c.rcpt, c.data), c.count)) == c.expected);
}

TEST_CASE("classify: replies make no sense → deferred, never delivered", "[delivery][outcome]") {
  CHECK(verdicts(classify(result(354, {}, std::nullopt), 2)) == "TT");
  CHECK(verdicts(classify(result(250, {354}, 250), 1)) == "T");
  CHECK(verdicts(classify(result(250, {250}, 354), 1)) == "T");
  // A positive MAIL reply with nothing else is not a delivery.
  CHECK(verdicts(classify(result(250, {}, 250), 1)) == "T");
}

TEST_CASE("classify: the deciding reply is kept for the queue listing and the bounce", "[delivery][outcome]") {
  MessageResult m;
  m.mail = make_reply(250, "2.1.0", "Ok");
  m.rcpt = {make_reply(550, "5.1.1", "No such user"), make_reply(250, "2.1.5", "Ok")};
  m.data = make_reply(250, "2.0.0", "Ok: queued as 7");
  const auto out = classify(m, 2);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == RecipientOutcome{Verdict::bounced, "550 5.1.1 No such user"});
  CHECK(out[1] == RecipientOutcome{Verdict::delivered, "250 2.0.0 Ok: queued as 7"});

  m.mail = make_reply(421, "4.7.0", "later");
  CHECK(classify(m, 1).at(0) == RecipientOutcome{Verdict::deferred, "421 4.7.0 later"});
  CHECK(classify(MessageResult{}, 1).at(0) == RecipientOutcome{Verdict::deferred, "no reply to MAIL FROM"});
}

TEST_CASE("transport_failure defers", "[delivery][outcome]") {
  CHECK(transport_failure("timed out waiting for the greeting") ==
        RecipientOutcome{Verdict::deferred, "timed out waiting for the greeting"});
}
