#include "otter/server/gzip.hpp"

#include <zlib.h>

#include <cctype>
#include <memory>

namespace otter::server {

Result<std::string> gzip_compress(std::string_view data, int level) {
  z_stream z{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's. memLevel 9: the most memory, the best ratio.
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    return make_error(ErrorCode::internal, "gzip: deflateInit2 failed");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, deflateEnd);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) return make_error(ErrorCode::internal, "gzip: deflate failed");
  out.resize(z.total_out);
  return out;
}

bool accepts_gzip(std::string_view v) {
  std::size_t pos = 0;
  while (pos <= v.size()) {
    auto end = v.find(',', pos);
    if (end == std::string_view::npos) end = v.size();
    std::string_view item = v.substr(pos, end - pos);
    pos = end + 1;
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    const auto semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && std::isspace(static_cast<unsigned char>(coding.back()))) coding.remove_suffix(1);
    if (coding != "gzip" && coding != "x-gzip") continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    const auto q = params.find("q=");
    if (q == std::string_view::npos) return true;
    std::string_view qv = params.substr(q + 2);
    // q=0, q=0.0, q=0.000 refuse; anything else accepts.
    bool zero = !qv.empty() && qv.front() == '0';
    for (std::size_t i = 1; zero && i < qv.size() && qv[i] != ' ' && qv[i] != ';'; ++i) {
      if (qv[i] != '.' && qv[i] != '0') zero = false;
    }
    return !zero;
  }
  return false;
}

}  // namespace otter::server
