#include "target.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "otter/common/hex.hpp"

namespace otter::cli {
namespace {

Result<std::uint16_t> parse_port(std::string_view text, std::string_view whole) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value == 0 || value > 65535) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("invalid port '{}' in '{}' (expected 1..65535)", text, whole));
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<Target> parse_target(std::string_view text, std::uint16_t default_port) {
  Target t;
  t.port = default_port;
  std::string_view host = text;
  std::string_view port;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return make_error(ErrorCode::invalid_argument, fmt::format("missing ']' in '{}'", text));
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return make_error(ErrorCode::invalid_argument, fmt::format("unexpected '{}' after ']' in '{}'", rest, text));
      }
      port = rest.substr(1);
      has_port = true;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    has_port = true;
  }  // else: no colon (host only) or several (a bare IPv6 literal)
  if (host.empty()) {
    return make_error(ErrorCode::invalid_argument, fmt::format("no host in '{}' (expected HOST[:PORT])", text));
  }
  if (has_port) {
    auto p = parse_port(port, text);
    if (!p) return tl::unexpected(p.error());
    t.port = *p;
  }
  t.host = std::string(host);
  return t;
}

Result<Sha256Digest> parse_sha256(std::string_view text) {
  Sha256Digest d{};
  if (auto r = from_hex(text, d); !r) {
    return make_error(ErrorCode::invalid_argument, fmt::format("invalid SHA-256 '{}': {}", text, r.error().message));
  }
  return d;
}

}  // namespace otter::cli
