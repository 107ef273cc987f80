// otter-server — in-process tests of the HTTP building blocks: router, percent-decoding, query parsing, error
// bodies, the multipart reader, and the OpenAPI document against the registered routes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "otter/server/api.hpp"
#include "otter/server/gzip.hpp"
#include "otter/server/http.hpp"
#include "otter/server/multipart.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter::server {
namespace {

using http::Router;

http::Handler named(std::string* out, std::string name) {
  return [out, name](http::Request&, http::Responder) { *out = name; };
}

void call(const Router::Match& m) {
  http::Request req;
  http::Responder r([](http::Response) {}, [] { return std::shared_ptr<http::EventSink>(); });
  (*m.handler)(req, r);
}

TEST(Router, MatchesLiteralParamAndRestSegments) {
  Router r;
  std::string hit;
  r.add("GET", "/api/v1/devices", named(&hit, "list"));
  r.add("GET", "/api/v1/devices/{name}", named(&hit, "get"));
  r.add("POST", "/api/v1/devices/{name}/probe", named(&hit, "probe"));
  r.add("GET", "/api/v1/artifacts/{name...}", named(&hit, "artifact"));
  r.add("PUT", "/api/v1/artifacts/{name...}", named(&hit, "put"), http::BodyMode::spooled);

  auto m = r.match("GET", "/api/v1/devices");
  ASSERT_NE(m.handler, nullptr);
  call(m);
  EXPECT_EQ(hit, "list");

  m = r.match("GET", "/api/v1/devices/dev-1");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("name"), "dev-1");
  m = r.match("POST", "/api/v1/devices/dev-1/probe");
  ASSERT_NE(m.handler, nullptr);
  call(m);
  EXPECT_EQ(hit, "probe");

  m = r.match("GET", "/api/v1/artifacts/fw/esp32/app.bin");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("name"), "fw/esp32/app.bin");
  EXPECT_EQ(m.mode, http::BodyMode::buffered);
  m = r.match("PUT", "/api/v1/artifacts/a.bin");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.mode, http::BodyMode::spooled);

  // A rest parameter captures "..", the artifact store decides about it.
  m = r.match("GET", "/api/v1/artifacts/../etc/passwd");
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("name"), "../etc/passwd");
}

TEST(Router, DistinguishesUnknownPathsFromWrongMethods) {
  Router r;
  std::string hit;
  r.add("GET", "/api/v1/devices/{name}", named(&hit, "get"));
  r.add("DELETE", "/api/v1/devices/{name}", named(&hit, "del"));
  r.add("GET", "/api/v1/artifacts/{name...}", named(&hit, "a"));

  auto m = r.match("POST", "/api/v1/devices/x");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_known);
  EXPECT_EQ(r.methods_for("/api/v1/devices/x"), (std::vector<std::string>{"GET", "DELETE"}));

  for (const char* path : {"/api/v1/devices", "/api/v1/devices/", "/api/v1/devices/x/y", "/api/v1/devicesx/a",
                           "/api/v1/artifacts", "/api/v1/artifacts/", "/", "", "api/v1/devices/x"}) {
    m = r.match("GET", path);
    EXPECT_EQ(m.handler, nullptr) << path;
    EXPECT_FALSE(m.path_known) << path;
  }
  EXPECT_EQ(r.routes().size(), 3u);
  EXPECT_EQ(r.routes()[1], (std::pair<std::string, std::string>{"DELETE", "/api/v1/devices/{name}"}));
}

TEST(Http, PercentDecoding) {
  EXPECT_EQ(http::percent_decode("/a%20b/%2e%2e%2Fetc").value(), "/a b/../etc");
  EXPECT_EQ(http::percent_decode("a+b").value(), "a+b");
  EXPECT_EQ(http::percent_decode("a+b", true).value(), "a b");
  EXPECT_EQ(http::percent_decode("%41%62").value(), "Ab");
  EXPECT_FALSE(http::percent_decode("%"));
  EXPECT_FALSE(http::percent_decode("%4"));
  EXPECT_FALSE(http::percent_decode("%zz"));
  EXPECT_FALSE(http::percent_decode("a%00b"));  // an encoded NUL never reaches a handler
  EXPECT_EQ(http::percent_decode("").value(), "");
}

TEST(Http, QueryParsing) {
  auto q = http::parse_query("limit=10&before=5&name=fw%2Fa+b.bin&flag&&x=");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->at("limit"), "10");
  EXPECT_EQ(q->at("before"), "5");
  EXPECT_EQ(q->at("name"), "fw/a b.bin");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_EQ(q->at("x"), "");
  EXPECT_FALSE(http::parse_query("a=%zz"));
  EXPECT_TRUE(http::parse_query("")->empty());
}

TEST(Http, ConstantTimeEqual) {
  EXPECT_TRUE(http::constant_time_equal("secret-token-123", "secret-token-123"));
  EXPECT_FALSE(http::constant_time_equal("secret-token-123", "secret-token-124"));
  EXPECT_FALSE(http::constant_time_equal("secret-token-123", "secret-token-12"));
  EXPECT_FALSE(http::constant_time_equal("", "x"));
  EXPECT_TRUE(http::constant_time_equal("", ""));
}

TEST(Http, ErrorBodiesCarryCodeNameAndTopLevelMessage) {
  auto r = http::Response::error(Error(ErrorCode::forbidden, "path is outside the artifact root"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.content_type, "application/json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], 110);
  EXPECT_EQ(j["error"]["name"], "FORBIDDEN");
  EXPECT_EQ(j["error"]["message"], "path is outside the artifact root");
  EXPECT_EQ(j["message"], "path is outside the artifact root");
  EXPECT_EQ(http::status_for(ErrorCode::not_found), 404);
  EXPECT_EQ(http::status_for(ErrorCode::invalid_argument), 400);
  EXPECT_EQ(http::status_for(ErrorCode::unauthorized), 401);
  EXPECT_EQ(http::status_for(ErrorCode::conflict), 409);
  EXPECT_EQ(http::status_for(ErrorCode::payload_too_large), 413);
  EXPECT_EQ(http::status_for(ErrorCode::connect_failed), 502);
  EXPECT_EQ(http::status_for(ErrorCode::timeout), 504);
  // Invalid UTF-8 in a message does not throw.
  auto bad = http::Response::error(400, ErrorCode::invalid_argument, std::string("bad \xff name"));
  EXPECT_TRUE(nlohmann::json::parse(bad.body, nullptr, false).is_object());
}

TEST(Http, HeaderLookupIsCaseInsensitive) {
  http::Request req;
  req.headers = {{"Content-Type", "application/json"}, {"X-Thing", "1"}};
  EXPECT_EQ(req.header("content-type").value(), "application/json");
  EXPECT_EQ(req.header("X-THING").value(), "1");
  EXPECT_FALSE(req.header("Origin"));
}

// --- multipart ---

class Multipart : public ::testing::Test {
 protected:
  std::string write(const std::string& content) {
    const auto p = dir_ / ("body-" + std::to_string(n_++));
    test::write_file(p, content);
    return p.string();
  }
  std::string slice(const std::string& content, const multipart::Part& p) {
    return content.substr(static_cast<std::size_t>(p.offset), static_cast<std::size_t>(p.size));
  }
  test::TempDir dir_{"otter-multipart"};
  int n_ = 0;
};

TEST_F(Multipart, BoundaryFromContentType) {
  EXPECT_EQ(multipart::boundary_from_content_type("multipart/form-data; boundary=abc123").value(), "abc123");
  EXPECT_EQ(multipart::boundary_from_content_type("Multipart/Form-Data;boundary=\"a b;c\"").value(), "a b;c");
  EXPECT_EQ(multipart::boundary_from_content_type("multipart/form-data; charset=utf-8; boundary=----X").value(),
            "----X");
  EXPECT_FALSE(multipart::boundary_from_content_type("application/json"));
  EXPECT_FALSE(multipart::boundary_from_content_type("multipart/form-data"));
  EXPECT_FALSE(multipart::boundary_from_content_type("multipart/form-data; boundary=\"unterminated"));
  EXPECT_FALSE(multipart::boundary_from_content_type("multipart/form-data; boundary=" + std::string(71, 'x')));
}

TEST_F(Multipart, FindsFieldsInAnyOrderWithBinaryContent) {
  const std::string file_content = std::string("\r\n--notTheBoundary\r\n\0\xff binary", 29) + "\r\n-";
  const std::string body = test::http::multipart_body(
      {{"file", "app.bin", file_content}, {"name", std::nullopt, "fw/app.bin"}}, "XyZ-boundary");
  const auto path = write("preamble to ignore\r\n" + body + "epilogue");
  auto parts = multipart::scan_file(path, "XyZ-boundary");
  ASSERT_TRUE(parts) << parts.error().to_string();
  ASSERT_EQ(parts->size(), 2u);
  const std::string all = test::read_file(path);
  EXPECT_EQ((*parts)[0].name, "file");
  EXPECT_EQ((*parts)[0].filename.value(), "app.bin");
  EXPECT_EQ((*parts)[0].content_type, "application/octet-stream");
  EXPECT_EQ(slice(all, (*parts)[0]), file_content);
  EXPECT_EQ((*parts)[1].name, "name");
  EXPECT_FALSE((*parts)[1].filename);
  EXPECT_EQ(slice(all, (*parts)[1]), "fw/app.bin");
}

TEST_F(Multipart, StreamsLargeContentAcrossReadChunks) {
  // 3 MiB of random bytes with boundary look-alikes on chunk edges: offsets must be exact.
  std::string content = test::random_bytes(3u << 20, 42);
  const std::string boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
  for (std::size_t at : {65536u - 3, 131072u - 10, 200000u}) {
    const std::string lookalike = "\r\n--" + boundary.substr(0, boundary.size() - 1) + "!";
    content.replace(at, lookalike.size(), lookalike);
  }
  const std::string body = test::http::multipart_body({{"file", "big.bin", content}}, boundary);
  const auto path = write(body);
  auto parts = multipart::scan_file(path, boundary);
  ASSERT_TRUE(parts) << parts.error().to_string();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].size, content.size());
  EXPECT_EQ(test::sha256_hex(slice(body, (*parts)[0])), test::sha256_hex(content));
}

TEST_F(Multipart, EmptyPartsAndNoHeaders) {
  const std::string body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"e\"\r\n\r\n\r\n--b--";
  auto parts = multipart::scan_file(write(body), "b");
  ASSERT_TRUE(parts) << parts.error().to_string();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].size, 0u);
}

TEST_F(Multipart, RejectsMalformedBodies) {
  auto code = [&](const std::string& body, multipart::Limits limits = {}) {
    auto r = multipart::scan_file(write(body), "b", limits);
    return r ? ErrorCode::ok : r.error().code;
  };
  EXPECT_EQ(code(""), ErrorCode::invalid_argument);
  EXPECT_EQ(code("no boundary here"), ErrorCode::invalid_argument);
  EXPECT_EQ(code("--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\ncontent without end"),
            ErrorCode::invalid_argument);
  EXPECT_EQ(code("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"),
            ErrorCode::invalid_argument);  // no disposition
  EXPECT_EQ(code("--b\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nx\r\n--b--"),
            ErrorCode::invalid_argument);
  EXPECT_EQ(code("--bX\r\n"), ErrorCode::invalid_argument);
  EXPECT_EQ(code("--b\r\nContent-Disposition: form-data; name=\"f\"\r\nX-Pad: " + std::string(10000, 'a') +
                 "\r\n\r\nx\r\n--b--"),
            ErrorCode::invalid_argument);
  std::string many;
  for (int i = 0; i < 5; ++i) many += "--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nx\r\n";
  many += "--b--";
  EXPECT_EQ(code(many, multipart::Limits{4, 8192}), ErrorCode::invalid_argument);
  EXPECT_EQ(code(many), ErrorCode::ok);
  EXPECT_EQ(multipart::scan_file("/nonexistent/otter/body", "b").error().code, ErrorCode::io);
}

TEST_F(Multipart, ParsesContentDisposition) {
  auto d = multipart::parse_disposition(R"(form-data; name="file"; filename="a \"q\".bin")");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->first, "form-data");
  ASSERT_EQ(d->second.size(), 2u);
  EXPECT_EQ(d->second[1].second, "a \"q\".bin");
}

// --- the OpenAPI document ---

TEST(OpenApi, IsOpenApi3AndDocumentsEveryRoute) {
  const auto doc = nlohmann::json::parse(openapi_document(), nullptr, false);
  ASSERT_TRUE(doc.is_object()) << "server/openapi.json is not valid JSON";
  ASSERT_TRUE(doc.contains("openapi"));
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  ASSERT_TRUE(doc.contains("paths"));

  Router router;
  register_routes(router, ApiContext{});  // only registers; no handler runs
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      if (method == "parameters") continue;
      std::string m = method;
      for (auto& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      documented.emplace(m, path);
      EXPECT_TRUE(op.contains("responses")) << m << " " << path;
    }
  }
  std::size_t routes = 0;
  for (auto [method, pattern] : router.routes()) {
    ++routes;
    if (const auto rest = pattern.find("...}"); rest != std::string::npos) pattern.erase(rest, 3);
    EXPECT_TRUE(documented.count({method, pattern})) << "undocumented route: " << method << " " << pattern;
  }
  EXPECT_GE(routes, 20u);
  EXPECT_EQ(documented.size(), routes) << "the document lists operations that the server does not route";
}

TEST(Gzip, AcceptEncodingParsing) {
  for (const char* yes : {"gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8", " x-gzip ", "deflate,gzip;q=0.001"})
    EXPECT_TRUE(accepts_gzip(yes)) << yes;
  for (const char* no : {"", "identity", "br", "gzip;q=0", "gzip;q=0.000", "gzipx", "deflate, gzip ;q=0"})
    EXPECT_FALSE(accepts_gzip(no)) << no;
}

TEST(Gzip, RoundTripsThroughZlib) {
  const std::string data = otter::test::random_bytes(5000, 1) + std::string(100000, 'a');
  auto gz = gzip_compress(data);
  ASSERT_TRUE(gz);
  ASSERT_GE(gz->size(), 18U);
  EXPECT_EQ(static_cast<unsigned char>((*gz)[0]), 0x1f);  // gzip magic
  EXPECT_EQ(static_cast<unsigned char>((*gz)[1]), 0x8b);
  EXPECT_LT(gz->size(), data.size() / 4);
  EXPECT_EQ(otter::test::http::gunzip(*gz), data);
  auto best = gzip_compress(data, 9);
  ASSERT_TRUE(best);
  EXPECT_LE(best->size(), gz->size());
  EXPECT_EQ(otter::test::http::gunzip(*best), data);
}

}  // namespace
}  // namespace otter::server
