#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "mailferry/message/sendmail_args.hpp"

using namespace mailferry::message;
using Mode = SendmailArgs::Mode;
using V = std::vector<std::string>;

namespace {

struct Case {
  const char* who;   // the caller that passes this command line
  V argv;
  bool t;
  bool i;
  std::optional<std::string> sender;
  std::optional<std::string> full_name;
  Mode mode;
  V recipients;
  V ignored;
};

}  // namespace

TEST_CASE("sendmail command lines of real callers", "[sendmail][message]") {
  const auto none = std::nullopt;
  const auto c = GENERATE_COPY(values<Case>({
      {"PHP mail() default sendmail_path", {"-t", "-i"}, true, true, none, none, Mode::deliver, {}, {}},
      {"PHPMailer", {"-oi", "-f", "a@example.com", "-t", "-t"}, true, true, "a@example.com", none, Mode::deliver, {}, {}},
      {"PHPMailer, attached -f", {"-oi", "-fa@example.com", "-t"}, true, true, "a@example.com", none, Mode::deliver, {}, {}},
      {"Symfony Mailer default", {"-bs"}, false, false, none, none, Mode::smtp_session, {}, {}},
      {"Symfony Mailer -t (dot-stuffed input)", {"-t"}, true, false, none, none, Mode::deliver, {}, {}},
      {"cron (cronie)", {"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"}, false, true, none, "CronDaemon",
       Mode::deliver, {"root"}, {"-B8BITMIME", "-oem"}},
      {"cron, separate values", {"-F", "Cron Daemon", "-i", "-B", "8BITMIME", "-oem", "root"}, false, true, none,
       "Cron Daemon", Mode::deliver, {"root"}, {"-B 8BITMIME", "-oem"}},
      {"git send-email", {"-i", "a@example.com", "c@example.org"}, false, true, none, none, Mode::deliver,
       {"a@example.com", "c@example.org"}, {}},
      {"git send-email with envelope sender", {"-i", "-f", "me@example.com", "a@example.com"}, false, true,
       "me@example.com", none, Mode::deliver, {"a@example.com"}, {}},
      {"smartd", {"-t"}, true, false, none, none, Mode::deliver, {}, {}},
      {"mail(1) from bsd-mailx", {"-i", "--", "user"}, false, true, none, none, Mode::deliver, {"user"}, {}},
      {"unattended-upgrades", {"-oi", "-t"}, true, true, none, none, Mode::deliver, {}, {}},
      {"grouped -ti", {"-ti"}, true, true, none, none, Mode::deliver, {}, {}},
      {"grouped -it", {"-it"}, true, true, none, none, Mode::deliver, {}, {}},
      {"grouped flags ending in a value", {"-tif", "a@example.com"}, true, true, "a@example.com", none,
       Mode::deliver, {}, {}},
      {"-r", {"-r", "a@example.com", "b@example.com"}, false, false, "a@example.com", none, Mode::deliver,
       {"b@example.com"}, {}},
      {"-r attached", {"-ra@example.com"}, false, false, "a@example.com", none, Mode::deliver, {}, {}},
      {"last -f wins", {"-f", "a@example.com", "-f", "b@example.com"}, false, false, "b@example.com", none,
       Mode::deliver, {}, {}},
      {"-f in angle brackets", {"-f", "<a@example.com>"}, false, false, "a@example.com", none, Mode::deliver, {}, {}},
      {"null sender", {"-f", "<>", "-t"}, true, false, "", none, Mode::deliver, {}, {}},
      {"null sender, empty", {"-f", "", "-t"}, true, false, "", none, Mode::deliver, {}, {}},
      {"options after recipients (getopt permutes)", {"a@example.com", "-t"}, true, false, none, none,
       Mode::deliver, {"a@example.com"}, {}},
      {"comma-separated recipients", {"a@example.com, b@example.org,c@example.net"}, false, false, none, none,
       Mode::deliver, {"a@example.com", "b@example.org", "c@example.net"}, {}},
      {"recipient with display name", {"Bob <b@example.org>"}, false, false, none, none, Mode::deliver,
       {"b@example.org"}, {}},
      {"after --, a dash is a recipient", {"--", "-t", "-weird@example.com"}, false, false, none, none,
       Mode::deliver, {"-t", "-weird@example.com"}, {}},
      {"- alone is an operand", {"-"}, false, false, none, none, Mode::deliver, {"-"}, {}},
      {"-bm", {"-bm", "a@example.com"}, false, false, none, none, Mode::deliver, {"a@example.com"}, {}},
      {"-b m", {"-b", "m", "a@example.com"}, false, false, none, none, Mode::deliver, {"a@example.com"}, {}},
      {"mailq", {"-bp"}, false, false, none, none, Mode::print_queue, {}, {}},
      {"-q", {"-q"}, false, false, none, none, Mode::flush_queue, {}, {}},
      {"-q15m", {"-q15m"}, false, false, none, none, Mode::flush_queue, {}, {}},
      {"-qf", {"-v", "-qf"}, false, false, none, none, Mode::flush_queue, {}, {}},
      {"ignored with values", {"-N", "never", "-L", "tag", "-h", "17", "-V", "envid", "-R", "hdrs", "-C", "/x.cf"},
       false, false, none, none, Mode::deliver, {}, {"-N never", "-L tag", "-h 17", "-V envid", "-R hdrs", "-C /x.cf"}},
      {"-X never logs to a file", {"-X", "/var/www/shell.php", "-t"}, true, false, none, none, Mode::deliver, {},
       {"-X /var/www/shell.php"}},
      {"ignored booleans", {"-U", "-n", "-G", "-m", "-Am", "-Ac", "-em", "-odi", "-odb"}, false, false, none, none,
       Mode::deliver, {}, {"-U", "-n", "-G", "-m", "-Am", "-Ac", "-em", "-odi", "-odb"}},
      {"-O opt=val ignored", {"-O", "DeliveryMode=b"}, false, false, none, none, Mode::deliver, {},
       {"-O DeliveryMode=b"}},
      {"-O IgnoreDots", {"-O", "IgnoreDots=true"}, false, true, none, none, Mode::deliver, {}, {}},
      {"-o i separate", {"-o", "i"}, false, true, none, none, Mode::deliver, {}, {}},
      {"-F empty", {"-F", "", "-t"}, true, false, none, "", Mode::deliver, {}, {}},
      {"nothing at all", {}, false, false, none, none, Mode::deliver, {}, {}},
  }));
  CAPTURE(c.who, c.argv);
  const auto r = parse_sendmail_args(c.argv);
  REQUIRE(r.ok());
  CHECK(r->recipients_from_headers == c.t);
  CHECK(r->ignore_dots == c.i);
  CHECK(r->sender == c.sender);
  CHECK(r->full_name == c.full_name);
  CHECK(r->mode == c.mode);
  CHECK(r->recipients == c.recipients);
  CHECK(r->ignored == c.ignored);
}

TEST_CASE("-v is kept", "[sendmail][message]") {
  const auto r = parse_sendmail_args({"-v", "-t"});
  REQUIRE(r.ok());
  CHECK(r->verbose);
  CHECK_FALSE(parse_sendmail_args({"-t"})->verbose);
}

TEST_CASE("sendmail command lines refused, naming the option", "[sendmail][message]") {
  auto [argv, message] = GENERATE(table<V, std::string>({
      {{"-Z"}, "unknown option -Z"},
      {{"-tZ"}, "unknown option -Z in \"-tZ\""},
      {{"--help"}, "unknown option \"--help\""},
      {{"-bd"}, "-bd is not supported (use mailferry serve)"},
      {{"-b", "d"}, "-bd is not supported (use mailferry serve)"},
      {{"-bD"}, "-bD is not supported (use mailferry serve)"},
      {{"-bi"}, "-bi is not supported (mailferry keeps no aliases database)"},
      {{"-I"}, "-I is not supported (mailferry keeps no aliases database)"},
      {{"-bv", "a@example.com"}, "-bv is not supported (mailferry does not verify addresses; mailferry probe checks the upstream)"},
      {{"-bt"}, "-bt is not supported"},
      {{"-ba"}, "-ba is not supported"},
      {{"-bx"}, "unknown option \"-bx\""},
      {{"-t", "-f"}, "option -f needs a value"},
      {{"-F"}, "option -F needs a value"},
      {{"-B"}, "option -B needs a value"},
  }));
  CAPTURE(argv);
  const auto r = parse_sendmail_args(argv);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == message);
}
