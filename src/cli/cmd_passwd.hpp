// cmd_passwd.hpp: `mailferry passwd` — read a password, print its crypt(3) hash for [[user]]
// password_hash. The terminal handling lives here, in the CLI, so that the core never touches one.
#pragma once

namespace mailferry::cli {

// On a terminal: prompts "Password: " and "Again: " on stderr with echo off; a mismatch is one line
// on stderr and exit 65. Otherwise: the first line of stdin (without its "\n" or "\r\n"); empty is
// exit 65. Prints the yescrypt hash and a newline on stdout; returns the exit code (0 on success).
int cmd_passwd();

}  // namespace mailferry::cli
