// exit_code.hpp: the process exit codes, mirroring sysexits.h as the SPEC requires.
#pragma once

namespace mailferry {

enum class ExitCode : int {
  ok = 0,
  usage = 64,        // EX_USAGE: bad command line, no recipient
  data = 65,         // EX_DATAERR: bad input data
  no_user = 67,      // EX_NOUSER
  unavailable = 69,  // EX_UNAVAILABLE: service (upstream, daemon) not available
  software = 70,     // EX_SOFTWARE: internal error
  cant_create = 73,  // EX_CANTCREAT
  io = 74,           // EX_IOERR
  temp_fail = 75,    // EX_TEMPFAIL: try again later; the caller still owns the message
  config = 78,       // EX_CONFIG
};

constexpr int to_int(ExitCode c) { return static_cast<int>(c); }

}  // namespace mailferry
