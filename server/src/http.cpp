// otter-server — the plain HTTP types: requests, responses, the router, percent-decoding.
#include "otter/server/http.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace otter::server::http {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// "/a/b/" → {"a", "b", ""}; "/" → {""}. The leading '/' is required by the caller.
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::size_t start = 0;
  for (;;) {
    const auto slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(path.substr(start));
      return out;
    }
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

bool is_rest_param(std::string_view seg) {
  return seg.size() > 5 && seg.front() == '{' && seg.substr(seg.size() - 4) == "...}";
}
bool is_param(std::string_view seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }

/// Matches `path` against the route's segments; fills params on success.
bool match_segments(const std::vector<std::string>& segments, std::string_view path,
                    std::map<std::string, std::string>& params) {
  if (path.empty() || path.front() != '/') return false;
  std::string_view rest = path.substr(1);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& seg = segments[i];
    if (is_rest_param(seg)) {
      if (rest.empty()) return false;
      params[seg.substr(1, seg.size() - 5)] = std::string(rest);
      return true;
    }
    const auto slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (is_param(seg)) {
      if (part.empty()) return false;
      params[seg.substr(1, seg.size() - 2)] = std::string(part);
    } else if (part != seg) {
      return false;
    }
    const bool last = i + 1 == segments.size();
    if (slash == std::string_view::npos) return last;
    if (last) return false;
    rest = rest.substr(slash + 1);
  }
  return false;
}

}  // namespace

std::optional<std::string> Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::error(const Error& e) { return error(status_for(e.code), e.code, e.message); }

Response Response::error(int status, ErrorCode code, std::string message) {
  nlohmann::ordered_json j;
  j["error"] = {{"code", static_cast<unsigned>(code)}, {"name", error_name(code)}, {"message", message}};
  j["message"] = std::move(message);
  return json(status, j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

int status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::ok:
      return 200;
    case ErrorCode::invalid_argument:
    case ErrorCode::bad_name:
    case ErrorCode::unsupported_kind:
      return 400;
    case ErrorCode::unauthorized:
      return 401;
    case ErrorCode::forbidden:
      return 403;
    case ErrorCode::not_found:
      return 404;
    case ErrorCode::conflict:
    case ErrorCode::canceled:
      return 409;
    case ErrorCode::payload_too_large:
    case ErrorCode::too_large:
      return 413;
    case ErrorCode::busy:
      return 503;
    case ErrorCode::no_space:
      return 507;
    case ErrorCode::timeout:
      return 504;
    case ErrorCode::connect_failed:
    case ErrorCode::connection_closed:
    case ErrorCode::device_auth:
    case ErrorCode::auth_failed:
    case ErrorCode::not_otter_device:
    case ErrorCode::protocol:
    case ErrorCode::unsupported_version:
    case ErrorCode::hash_mismatch:
    case ErrorCode::resume_mismatch:
    case ErrorCode::storage:
      return 502;
    case ErrorCode::internal:
    case ErrorCode::io:
    case ErrorCode::config:
      return 500;
  }
  return 500;
}

void Router::add(std::string method, std::string pattern, Handler handler, BodyMode mode) {
  Route r;
  r.method = std::move(method);
  for (auto seg : split_path(pattern)) r.segments.emplace_back(seg);
  r.pattern = std::move(pattern);
  r.handler = std::move(handler);
  r.mode = mode;
  routes_.push_back(std::move(r));
}

Router::Match Router::match(std::string_view method, std::string_view path) const {
  Match m;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!match_segments(r.segments, path, params)) continue;
    if (r.method != method) {
      m.path_known = true;
      continue;
    }
    m.handler = &r.handler;
    m.mode = r.mode;
    m.params = std::move(params);
    m.path_known = true;
    return m;
  }
  return m;
}

std::vector<std::string> Router::methods_for(std::string_view path) const {
  std::vector<std::string> out;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!match_segments(r.segments, path, params)) continue;
    if (std::find(out.begin(), out.end(), r.method) == out.end()) out.push_back(r.method);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.emplace_back(r.method, r.pattern);
  return out;
}

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      const char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return std::nullopt;
      out.push_back(decoded);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value =
        eq == std::string_view::npos ? std::optional<std::string>("") : percent_decode(pair.substr(eq + 1), true);
    if (!key || !value) return std::nullopt;
    out.insert_or_assign(std::move(*key), std::move(*value));
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer input is visited; the length difference is folded into the result.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

}  // namespace otter::server::http
