// config.cpp: networks and listen addresses from text, membership tests, enum spellings.
#include "mailferry/config/config.hpp"

#include "mailferry/config/units.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace mailferry::config {
namespace {

constexpr std::string_view network_expected = R"((expected a network like "10.0.0.0/8" or "fd00::/8"))";
constexpr std::string_view address_expected =
    R"((expected "host:port" with an IP address, like "127.0.0.1:587" or "[::1]:587"))";


// Whether the first `prefix` bits of a and b agree.
bool same_prefix(const unsigned char* a, const unsigned char* b, int prefix) {
  const int whole = prefix / 8;
  if (std::memcmp(a, b, static_cast<std::size_t>(whole)) != 0) return false;
  const int rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xFFu << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

constexpr std::array<unsigned char, 12> v4_mapped_prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

bool is_v4_mapped(const unsigned char* v6) {
  return std::memcmp(v6, v4_mapped_prefix.data(), v4_mapped_prefix.size()) == 0;
}

}  // namespace

// A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; comparing those against v4 networks (and
// plain v4 addresses against v6 networks in their mapped form) makes the answer independent of how
// the listener's socket happened to be opened.
bool Network::contains(const unsigned char* address, bool address_v6) const {
  std::array<unsigned char, 16> mapped{};
  const unsigned char* candidate = address;
  if (v6 && !address_v6) {
    std::memcpy(mapped.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size());
    std::memcpy(mapped.data() + 12, address, 4);
    candidate = mapped.data();
  } else if (!v6 && address_v6) {
    if (!is_v4_mapped(address)) return false;
    candidate = address + 12;
  }
  return same_prefix(addr.data(), candidate, prefix);
}

Result<Network> parse_network(std::string_view text) {
  if (text.empty()) return value_error(text, "is empty", network_expected);
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  Network n;
  n.text = std::string(text);
  if (inet_pton(AF_INET, address.c_str(), n.addr.data()) == 1) {
    n.v6 = false;
  } else if (inet_pton(AF_INET6, address.c_str(), n.addr.data()) == 1) {
    n.v6 = true;
  } else {
    return value_error(text, "is not an IP address or network", network_expected);
  }
  const int max_prefix = n.v6 ? 128 : 32;
  n.prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      return value_error(text, "has no valid prefix length after \"/\"", network_expected);
    }
    int prefix = 0;
    for (char c : digits) prefix = prefix * 10 + (c - '0');
    if (prefix > max_prefix) {
      return value_error(text, "has a prefix length over " + std::to_string(max_prefix),
                          network_expected);
    }
    n.prefix = prefix;
  }
  // Host bits set: say which network was probably meant rather than guessing silently.
  std::array<unsigned char, 16> masked{};
  const int length = n.v6 ? 16 : 4;
  for (int i = 0; i < length; ++i) {
    const int bits = n.prefix - i * 8;
    const unsigned mask = bits >= 8 ? 0xFFu : bits <= 0 ? 0u : (0xFFu << (8 - bits)) & 0xFFu;
    masked[static_cast<std::size_t>(i)] =
        static_cast<unsigned char>(n.addr[static_cast<std::size_t>(i)] & mask);
  }
  if (masked != n.addr) {
    char buffer[INET6_ADDRSTRLEN] = {};
    inet_ntop(n.v6 ? AF_INET6 : AF_INET, masked.data(), buffer, sizeof buffer);
    const std::string meant = std::string(buffer) + "/" + std::to_string(n.prefix);
    return Error{"\"" + std::string(text) + "\" has host bits set after /" +
                 std::to_string(n.prefix) + " (expected the network \"" + meant +
                 "\", or a /" + std::to_string(max_prefix) + " for one host)"};
  }
  return n;
}

Result<Listen> parse_listen_address(std::string_view text) {
  if (text.empty()) return value_error(text, "is empty", address_expected);
  std::string_view host;
  std::string_view port_text;
  bool v6 = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return value_error(text, "has no \"]:port\" after the IPv6 address", address_expected);
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
    v6 = true;
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return value_error(text, "has no \":port\"", address_expected);
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return value_error(text, "needs brackets around its IPv6 address", address_expected);
    }
  }
  std::array<unsigned char, 16> buffer{};
  const std::string host_string(host);
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host_string.c_str(), buffer.data()) != 1) {
    return value_error(text,
                        v6 ? "does not hold an IPv6 address in its brackets"
                           : "has a host name or junk where an IP address belongs",
                        address_expected);
  }
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string_view::npos) {
    return value_error(text, "has no valid port number", address_expected);
  }
  unsigned port = 0;
  for (char c : port_text) port = port * 10 + static_cast<unsigned>(c - '0');
  if (port == 0 || port > 65535) return value_error(text, "has a port outside 1..65535", address_expected);
  Listen l;
  l.address = std::string(text);
  l.host = host_string;
  l.port = static_cast<std::uint16_t>(port);
  return l;
}

std::string_view to_string(ListenTls v) {
  switch (v) {
    case ListenTls::starttls: return "starttls";
    case ListenTls::implicit: return "implicit";
    case ListenTls::none: return "none";
  }
  return "?";
}

std::string_view to_string(ListenAuth v) {
  switch (v) {
    case ListenAuth::required: return "required";
    case ListenAuth::none: return "none";
  }
  return "?";
}

std::string_view to_string(UpstreamTls v) {
  switch (v) {
    case UpstreamTls::starttls: return "starttls";
    case UpstreamTls::implicit: return "implicit";
    case UpstreamTls::none: return "none";
  }
  return "?";
}

std::string_view to_string(UpstreamAuth v) {
  switch (v) {
    case UpstreamAuth::auto_: return "auto";
    case UpstreamAuth::plain: return "plain";
    case UpstreamAuth::login: return "login";
    case UpstreamAuth::xoauth2: return "xoauth2";
  }
  return "?";
}

std::string_view to_string(LogFormat v) {
  switch (v) {
    case LogFormat::text: return "text";
    case LogFormat::json: return "json";
  }
  return "?";
}

std::string_view to_string(OAuthProvider v) {
  switch (v) {
    case OAuthProvider::microsoft: return "microsoft";
    case OAuthProvider::google: return "google";
    case OAuthProvider::custom: return "custom";
  }
  return "?";
}

}  // namespace mailferry::config
