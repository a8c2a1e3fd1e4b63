// toml_impl.cpp: toml++'s implementation, compiled into the static link only.
// Debian ships toml++ as a shared library (its pkg-config file sets TOML_HEADER_ONLY=0 and links
// -ltomlplusplus) and no .a, so the core's objects call functions that a static binary must carry
// itself: exactly one translation unit with TOML_IMPLEMENTATION provides them. The dynamic
// `mailferry` keeps using the shared library and never compiles this file.
#define TOML_IMPLEMENTATION
#include <toml++/toml.h>
