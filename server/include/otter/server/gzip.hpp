// otter-server — gzip (RFC 1952) of response bodies through zlib, for clients that send "Accept-Encoding: gzip".
#pragma once

#include <string>
#include <string_view>

#include "otter/common/error.hpp"

namespace otter::server {

/// The gzip member of `data` at zlib `level` (1..9; 9 suits bodies compressed once and served many times: ~8 %
/// smaller than 6 on the device list). INTERNAL if zlib fails (out of memory).
Result<std::string> gzip_compress(std::string_view data, int level = 6);

/// True if an Accept-Encoding header value accepts gzip ("gzip", "gzip;q=0.5", "br, gzip"; not "gzip;q=0").
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace otter::server
