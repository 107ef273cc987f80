// otter-server — gzip (RFC 1952) of response bodies through zlib, for clients that send "Accept-Encoding: gzip".
#pragma once

#include <string>
#include <string_view>

#include "otter/common/error.hpp"

namespace otter::server {

/// The gzip member of `data` (zlib level 6). INTERNAL if zlib fails (out of memory).
Result<std::string> gzip_compress(std::string_view data);

/// True if an Accept-Encoding header value accepts gzip ("gzip", "gzip;q=0.5", "br, gzip"; not "gzip;q=0").
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace otter::server
