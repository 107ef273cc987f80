// otter-server — a streaming reader for multipart/form-data bodies (RFC 7578) spooled to a file. It only records
// where each part's content lies in the file, so memory stays bounded by the boundary and the part headers whatever
// the size of the uploaded file; the caller then copies (or reads) the byte ranges it wants.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::server::multipart {

struct Part {
  std::string name;                     ///< the form field name (Content-Disposition: form-data; name="...")
  std::optional<std::string> filename;  ///< Content-Disposition filename="...", as sent
  std::string content_type;             ///< the part's Content-Type, empty if absent
  std::uint64_t offset = 0;             ///< where the content starts in the file
  std::uint64_t size = 0;               ///< content length in bytes
};

struct Limits {
  std::size_t max_parts = 32;
  std::size_t max_header_bytes = 8192;  ///< per part
};

/// The boundary of a "multipart/form-data; boundary=..." Content-Type (quoted or not). INVALID_ARGUMENT if the type
/// is not multipart/form-data or the boundary is missing or longer than 70 characters (RFC 2046).
Result<std::string> boundary_from_content_type(std::string_view content_type);

/// Scans the multipart body in `path`. INVALID_ARGUMENT on a malformed body (no opening or closing delimiter, a part
/// without Content-Disposition form-data, headers over the limit, too many parts); IO if the file cannot be read.
Result<std::vector<Part>> scan_file(const std::string& path, std::string_view boundary, Limits limits = {});

/// Parses "form-data; name=\"file\"; filename=\"a.bin\"" into (disposition type, parameters with lower-case names).
std::optional<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> parse_disposition(
    std::string_view value);

}  // namespace otter::server::multipart
