// secret.hpp: Secret, a string that can never be printed by accident.
// Streaming it prints "********"; the value is reachable only through reveal(), which greps well.
#pragma once

#include <ostream>
#include <string>

namespace mailferry {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string v) : value_(std::move(v)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "********"; }
  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

}  // namespace mailferry
