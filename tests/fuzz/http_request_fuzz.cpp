// otter fuzzing — raw bytes as HTTP/1.1 requests into otter-server: Beast's request parser (as http_server.cpp
// configures it: 16 KiB header limit, 1 MiB body limit), then the router and every handler (server_harness.hpp).
// Several requests may follow each other on one "connection" (keep-alive), so a request can see the state an earlier
// one left (a device created, an artifact uploaded, a job started). Properties: server_harness.hpp.
#include <cstdint>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "server_harness.hpp"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  otter::fuzz::ServerUnderTest server;
  std::size_t at = 0;
  for (int requests = 0; requests < 8 && at < size; ++requests) {
    bhttp::request_parser<bhttp::string_body> p;
    p.header_limit(16 * 1024);
    p.body_limit(1u << 20);
    p.eager(true);
    boost::beast::error_code ec;
    while (at < size && !p.is_done()) {
      const std::size_t n = p.put(boost::asio::buffer(data + at, size - at), ec);
      at += n;
      if (ec == bhttp::error::need_more) {
        ec = {};
        if (n == 0) break;
        continue;
      }
      if (ec || n == 0) break;
    }
    if (!ec && !p.is_done() && p.is_header_done()) p.put_eof(ec);  // the client closed: a body up to EOF ends here
    if (ec || !p.is_done()) return 0;  // a 400 (or the connection closes): nothing reaches a handler

    const auto& m = p.get();
    otter::server::http::Request req;
    req.method = std::string(m.method_string());
    req.target = std::string(m.target());
    req.remote = "127.0.0.1:40000";
    for (const auto& f : m) req.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    req.body = m.body();
    (void)server.dispatch(std::move(req));
    if (!m.keep_alive()) break;
  }
  return 0;
}
