// otter-server — streaming multipart/form-data reader over a spooled body (see multipart.hpp).
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "otter/server/multipart.hpp"

namespace otter::server::multipart {

namespace {

constexpr std::size_t kReadChunk = std::size_t{64} * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// "type; a=b; c=\"d;e\"" → ("type", {("a","b"), ("c","d;e")}); nullopt on an unterminated quoted string.
std::optional<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> parse_params(
    std::string_view value) {
  const auto semi = value.find(';');
  std::string type = lower(trim(value.substr(0, semi)));
  std::vector<std::pair<std::string, std::string>> params;
  std::size_t i = semi == std::string_view::npos ? value.size() : semi + 1;
  while (i < value.size()) {
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t' || value[i] == ';')) ++i;
    if (i >= value.size()) break;
    const auto name_end = value.find_first_of("=;", i);
    const std::string name =
        lower(trim(value.substr(i, name_end == std::string_view::npos ? name_end : name_end - i)));
    if (name_end == std::string_view::npos || value[name_end] == ';') {
      params.emplace_back(name, "");
      i = name_end == std::string_view::npos ? value.size() : name_end + 1;
      continue;
    }
    i = name_end + 1;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::string v;
    if (i < value.size() && value[i] == '"') {
      ++i;
      bool closed = false;
      while (i < value.size()) {
        const char c = value[i++];
        if (c == '\\' && i < value.size()) {
          v.push_back(value[i++]);
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          v.push_back(c);
        }
      }
      if (!closed) return std::nullopt;
    } else {
      const auto end = value.find(';', i);
      v = std::string(trim(value.substr(i, end == std::string_view::npos ? end : end - i)));
      i = end == std::string_view::npos ? value.size() : end;
    }
    params.emplace_back(name, std::move(v));
  }
  return std::pair{std::move(type), std::move(params)};
}

/// Sequential reader with a window buffer; `pos` indexes `buf`, `base` is the file offset of buf[0].
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  std::string buf;
  std::size_t pos = 0;
  std::uint64_t base = 0;
  std::optional<Error> io_error;

  /// Reads more (dropping consumed bytes first). False at end of file or on error (io_error set).
  bool fill() {
    if (pos > 0) {
      buf.erase(0, pos);
      base += pos;
      pos = 0;
    }
    std::array<char, kReadChunk> chunk{};
    for (;;) {
      const ssize_t n = ::read(fd_, chunk.data(), chunk.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) io_error = Error(ErrorCode::io, fmt::format("reading the upload: {}", std::strerror(errno)));
      if (n <= 0) return false;
      buf.append(chunk.data(), static_cast<std::size_t>(n));
      return true;
    }
  }
  /// At least n unread bytes available?
  bool ensure(std::size_t n) {
    while (buf.size() - pos < n) {
      if (!fill()) return false;
    }
    return true;
  }
  [[nodiscard]] std::uint64_t offset() const { return base + pos; }

 private:
  int fd_;
};

struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Error malformed(std::string_view what) {
  return {ErrorCode::invalid_argument, fmt::format("malformed multipart/form-data body: {}", what)};
}

}  // namespace

std::optional<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> parse_disposition(
    std::string_view value) {
  return parse_params(value);
}

Result<std::string> boundary_from_content_type(std::string_view content_type) {
  auto parsed = parse_params(content_type);
  if (!parsed || parsed->first != "multipart/form-data")
    return make_error(ErrorCode::invalid_argument, "Content-Type is not multipart/form-data");
  for (const auto& [k, v] : parsed->second) {
    if (k != "boundary") continue;
    if (v.empty() || v.size() > 70)
      return make_error(ErrorCode::invalid_argument, "multipart boundary must be 1 to 70 characters");
    return v;
  }
  return make_error(ErrorCode::invalid_argument, "multipart/form-data Content-Type without a boundary");
}

Result<std::vector<Part>> scan_file(const std::string& path, std::string_view boundary, Limits limits) {
  Fd file;
  file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) return make_error(ErrorCode::io, fmt::format("opening the upload: {}", std::strerror(errno)));
  Reader r(file.fd);
  auto fail = [&](std::string_view what) -> tl::unexpected<Error> {
    if (r.io_error) return tl::unexpected(*r.io_error);
    return tl::unexpected(malformed(what));
  };
  const std::string dash_boundary = "--" + std::string(boundary);
  const std::string delimiter = "\r\n" + dash_boundary;

  // Preamble: the first delimiter is "--boundary" at the very start or "\r\n--boundary" later.
  if (!r.ensure(dash_boundary.size())) return fail("no opening boundary");
  if (r.buf.compare(0, dash_boundary.size(), dash_boundary) == 0) {
    r.pos = dash_boundary.size();
  } else {
    for (;;) {
      const auto q = r.buf.find(delimiter, r.pos);
      if (q != std::string::npos) {
        r.pos = q + delimiter.size();
        break;
      }
      if (r.buf.size() - r.pos >= delimiter.size()) r.pos = r.buf.size() - delimiter.size() + 1;
      if (!r.fill()) return fail("no opening boundary");
    }
  }

  std::vector<Part> parts;
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise optional whitespace and CRLF start a part.
    if (!r.ensure(2)) return fail("truncated after a boundary");
    if (r.buf.compare(r.pos, 2, "--") == 0) return parts;
    for (;;) {
      if (!r.ensure(1)) return fail("truncated after a boundary");
      if (r.buf[r.pos] != ' ' && r.buf[r.pos] != '\t') break;
      ++r.pos;
    }
    if (!r.ensure(2) || r.buf.compare(r.pos, 2, "\r\n") != 0) return fail("boundary not followed by a line end");
    r.pos += 2;
    if (parts.size() >= limits.max_parts) return fail(fmt::format("more than {} parts", limits.max_parts));

    // Part headers, up to an empty line.
    std::string headers;
    if (!r.ensure(2)) return fail("truncated part header");
    if (r.buf.compare(r.pos, 2, "\r\n") == 0) {
      r.pos += 2;
    } else {
      for (;;) {
        const auto q = r.buf.find("\r\n\r\n", r.pos);
        if (q != std::string::npos) {
          if (q - r.pos > limits.max_header_bytes) return fail("part header too large");
          headers = r.buf.substr(r.pos, q - r.pos + 2);
          r.pos = q + 4;
          break;
        }
        if (r.buf.size() - r.pos > limits.max_header_bytes) return fail("part header too large");
        if (!r.fill()) return fail("truncated part header");
      }
    }
    Part part;
    bool form_data = false;
    for (std::size_t i = 0; i < headers.size();) {
      const auto eol = headers.find("\r\n", i);
      const std::string_view line = std::string_view(headers).substr(i, eol - i);
      i = eol + 2;
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) return fail("part header line without ':'");
      const auto name = lower(trim(line.substr(0, colon)));
      const auto value = trim(line.substr(colon + 1));
      if (name == "content-disposition") {
        auto d = parse_params(value);
        if (!d) return fail("bad Content-Disposition");
        if (d->first != "form-data") return fail("part is not form-data");
        form_data = true;
        for (auto& [k, v] : d->second) {
          if (k == "name") part.name = v;
          if (k == "filename") part.filename = v;
        }
      } else if (name == "content-type") {
        part.content_type = std::string(value);
      }
    }
    if (!form_data) return fail("part without Content-Disposition: form-data");

    // Content, up to the next delimiter.
    part.offset = r.offset();
    for (;;) {
      const auto q = r.buf.find(delimiter, r.pos);
      if (q != std::string::npos) {
        part.size = r.base + q - part.offset;
        r.pos = q + delimiter.size();
        break;
      }
      if (r.buf.size() - r.pos >= delimiter.size()) r.pos = r.buf.size() - delimiter.size() + 1;
      if (!r.fill()) return fail("no closing boundary");
    }
    parts.push_back(std::move(part));
  }
}

}  // namespace otter::server::multipart
