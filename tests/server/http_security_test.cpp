// otter-server — the hostile side: artifact-root confinement (traversal, absolute paths, symlinks, URL-encoded
// traversal, over-long paths), the API token, CORS, malformed and oversized requests, slow clients and garbage.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <csignal>

#include "server_fixture.hpp"

namespace otter::test::http {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kSecret = "TOP-SECRET-CONTENT-do-not-leak";

class Security : public ServerTest {
 protected:
  /// A secret file next to the artifact root and two symlinks in the root that lead to it.
  void plant_secret() {
    write_file(dir_ / "secret.txt", kSecret);
    fs::create_directories(root());
    write_file(root() / "ok.txt", "fine");
    fs::create_symlink(dir_ / "secret.txt", root() / "link.txt");
    fs::create_symlink(dir_.path(), root() / "escape");
    fs::create_symlink("../secret.txt", root() / "rel-link.txt");
  }
  void expect_no_leak(const Reply& r, const std::string& what) {
    EXPECT_EQ(r.body.find(kSecret), std::string::npos) << what << ": " << r.body;
    EXPECT_EQ(r.body.find(sha256_hex(kSecret)), std::string::npos) << what << ": " << r.body;
  }
};

TEST_F(Security, ArtifactPathsAreConfinedToTheRoot) {
  plant_secret();
  start();
  add_device("d1", "127.0.0.1:1");
  const auto before = snapshot_tree(dir_.path());
  const std::string abs_secret = (dir_ / "secret.txt").string();
  const std::string long_path = std::string(5000, 'a');
  struct Case {
    std::string path;
    int status;
  };
  const std::vector<Case> cases = {
      {"../secret.txt", 403},     {"ok/../../secret.txt", 403},
      {"./../secret.txt", 403},   {abs_secret, 403},
      {"/etc/passwd", 403},       {root().string() + "/../secret.txt", 403},
      {"link.txt", 403},          {"rel-link.txt", 403},
      {"escape/secret.txt", 403}, {"escape/nothing-here", 403},
      {long_path, 400},           {std::string(300, 'b') + "/x", 400},
      {"ok.txt\x01", 400},
  };
  for (const auto& c : cases) {
    auto r = client().post("/api/upload", {{"filePath", c.path}, {"device", "d1"}});
    EXPECT_EQ(r.status, c.status) << "POST /api/upload " << c.path.substr(0, 80) << ": " << r.body;
    EXPECT_FALSE(r.message().empty());
    expect_no_leak(r, "upload " + c.path.substr(0, 80));
    r = client().post("/api/v1/jobs", {{"artifact", c.path}, {"devices", {"d1"}}});
    EXPECT_EQ(r.status, c.status) << "POST /api/v1/jobs " << c.path.substr(0, 80) << ": " << r.body;
    expect_no_leak(r, "jobs " + c.path.substr(0, 80));
  }
  // Artifact URLs, percent-encoded traversal included.
  const std::vector<std::pair<std::string, int>> urls = {
      {"/api/v1/artifacts/%2e%2e%2fetc%2fpasswd", 403},
      {"/api/v1/artifacts/%2E%2E/secret.txt", 403},
      {"/api/v1/artifacts/../secret.txt", 403},
      {"/api/v1/artifacts/ok.txt/../../secret.txt", 403},
      {"/api/v1/artifacts/%2fetc%2fpasswd", 403},
      {"/api/v1/artifacts/link.txt", 403},
      {"/api/v1/artifacts/escape/secret.txt", 403},
      {"/api/v1/artifacts/" + long_path, 400},
      {"/api/v1/artifacts/a%00b", 400},
      {"/api/v1/artifacts/%zz", 400},
  };
  for (const auto& [url, status] : urls) {
    auto r = client().get(url);
    EXPECT_EQ(r.status, status) << "GET " << url.substr(0, 80) << ": " << r.body;
    expect_no_leak(r, url.substr(0, 80));
    r = client().del(url);
    EXPECT_EQ(r.status, status) << "DELETE " << url.substr(0, 80) << ": " << r.body;
  }
  auto r = client().get("/api/v1/artifacts");
  ASSERT_EQ(r.status, 200);
  expect_no_leak(r, "list");
  ASSERT_EQ(r.json()["artifacts"].size(), 1u) << "symlinks are not listed: " << r.body;
  EXPECT_EQ(r.json()["artifacts"][0]["name"], "ok.txt");
  // Uploads: traversal names are refused; a parent directory that is a symlink out of the root too. Uploading
  // over a symlink inside the root replaces the link itself, never what it points to.
  const std::vector<std::pair<std::string, int>> puts = {
      {"/api/v1/artifacts/%2e%2e%2fsecret.txt", 400},  {"/api/v1/artifacts/../secret.txt", 400},
      {"/api/v1/artifacts/%2fetc%2fpasswd", 400},      {"/api/v1/artifacts/ok.txt/../../secret.txt", 400},
      {"/api/v1/artifacts/escape/secret.txt", 403},    {"/api/v1/artifacts/escape/new.txt", 403},
      {"/api/v1/artifacts/" + long_path, 400},         {"/api/v1/artifacts/link.txt", 201},
      {"/api/v1/artifacts?name=..%2Fsecret.txt", 400},
  };
  for (const auto& [url, status] : puts) {
    r = client().request(url.find('?') == std::string::npos ? "PUT" : "POST", url, "overwritten");
    EXPECT_EQ(r.status, status) << "upload " << url.substr(0, 80) << ": " << r.body;
    expect_no_leak(r, url.substr(0, 80));
  }
  EXPECT_FALSE(fs::is_symlink(root() / "link.txt"));
  EXPECT_EQ(read_file(root() / "link.txt"), "overwritten");
  EXPECT_FALSE(fs::exists(dir_ / "new.txt"));

  EXPECT_EQ(read_file(dir_ / "secret.txt"), kSecret);
  // Nothing outside the artifact root (and the server's data directory) changed.
  auto outside = [](TreeSnapshot t) {
    std::erase_if(t,
                  [](const auto& e) { return e.first.rfind("artifacts", 0) == 0 || e.first.rfind("data", 0) == 0; });
    return t;
  };
  EXPECT_EQ(diff_trees(outside(before), outside(snapshot_tree(dir_.path()))), "");
  EXPECT_FALSE(outside(before).empty());
  EXPECT_TRUE(client().get("/api/v1/jobs").json()["jobs"].empty());
}

TEST_F(Security, TokenGuardsStateChangingCalls) {
  write_file(dir_ / "token", "s3cret-token-0123456789\n");
  ::chmod((dir_ / "token").c_str(), 0600);
  start({"--token-file", (dir_ / "token").string()});
  const json device = {{"name", "d1"}, {"address", "10.0.0.1:1"}, {"key", kKey}};

  auto r = client().post("/api/v1/devices", device);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.error_name(), "UNAUTHORIZED");
  EXPECT_FALSE(r.message().empty());
  EXPECT_NE(r.header("WWW-Authenticate").value_or("").find("Bearer"), std::string::npos);
  for (const char* auth : {"Bearer wrong-token-0123456789", "Bearer ", "Bearer s3cret-token-012345678",
                           "Bearer s3cret-token-01234567890", "Basic czNjcmV0LXRva2Vu", "s3cret-token-0123456789"}) {
    r = client().post("/api/v1/devices", device, {{"Authorization", auth}});
    EXPECT_EQ(r.status, 401) << auth;
  }
  EXPECT_EQ(client().post("/api/upload", {{"filePath", "x"}}).status, 401);
  EXPECT_EQ(client().request("PUT", "/api/v1/artifacts/a.bin", "x").status, 401);
  EXPECT_FALSE(fs::exists(root() / "a.bin"));
  EXPECT_EQ(client().del("/api/v1/devices/d1").status, 401);

  r = client().post("/api/v1/devices", device, {{"Authorization", "Bearer s3cret-token-0123456789"}});
  EXPECT_EQ(r.status, 201) << r.body;
  r = client().post("/api/v1/devices", {{"name", "d2"}, {"address", "10.0.0.1:1"}, {"key", kKey}},
                    {{"Authorization", "bearer s3cret-token-0123456789"}});
  EXPECT_EQ(r.status, 201) << "the scheme is case-insensitive";
  // Reads, the page and the health check need no token.
  EXPECT_EQ(client().get("/healthz").status, 200);
  EXPECT_EQ(client().get("/").status, 200);
  EXPECT_EQ(client().get("/api/v1/devices").status, 200);
  EXPECT_EQ(client().get("/api/v1/devices").json()["devices"].size(), 2u);
}

TEST_F(Security, RefusesToListenOffLoopbackWithoutAToken) {
  Process p({bin_path("otter-server"), "--listen", "0.0.0.0:0", "--data", (dir_ / "data").string()});
  const auto rc = p.wait(20s);
  ASSERT_TRUE(rc) << p.output();
  EXPECT_EQ(*rc, 2);
  EXPECT_NE(p.stderr_text().find("--token-file"), std::string::npos) << p.output();
  EXPECT_EQ(p.stdout_text().find("listening"), std::string::npos);
}

TEST_F(Security, CorsOnlyForListedOrigins) {
  start({"--cors-origin", "http://console.example:5500", "--cors-origin", "https://ops.example"});
  const std::string good = "http://console.example:5500";
  const std::string evil = "http://evil.example";

  auto r = client().get("/healthz", {{"Origin", good}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Access-Control-Allow-Origin").value_or(""), good);
  EXPECT_NE(r.header("Vary").value_or("").find("Origin"), std::string::npos);
  r = client().get("/healthz", {{"Origin", evil}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.header("Access-Control-Allow-Origin"));
  r = client().get("/healthz", {{"Origin", "http://console.example:5500.evil.example"}});
  EXPECT_FALSE(r.header("Access-Control-Allow-Origin"));

  // Preflight
  r = client().request("OPTIONS", "/api/v1/devices", {},
                       {{"Origin", good},
                        {"Access-Control-Request-Method", "POST"},
                        {"Access-Control-Request-Headers", "content-type, authorization"}});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("Access-Control-Allow-Origin").value_or(""), good);
  EXPECT_NE(r.header("Access-Control-Allow-Methods").value_or("").find("POST"), std::string::npos);
  EXPECT_NE(r.header("Access-Control-Allow-Methods").value_or("").find("DELETE"), std::string::npos);
  const auto allow_headers = r.header("Access-Control-Allow-Headers").value_or("");
  EXPECT_NE(allow_headers.find("Content-Type"), std::string::npos);
  EXPECT_NE(allow_headers.find("Authorization"), std::string::npos);
  r = client().request("OPTIONS", "/api/v1/devices", {},
                       {{"Origin", evil}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.error_name(), "FORBIDDEN");
  EXPECT_FALSE(r.header("Access-Control-Allow-Origin"));

  // State-changing calls from a foreign origin are refused, from a listed one answered with CORS headers.
  const json device = {{"name", "d1"}, {"address", "10.0.0.1:1"}, {"key", kKey}};
  r = client().post("/api/v1/devices", device, {{"Origin", evil}});
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");
  EXPECT_FALSE(r.message().empty());
  EXPECT_EQ(client().post("/api/upload", {{"filePath", "x"}}, {{"Origin", "null"}}).status, 403);
  EXPECT_EQ(client().get("/api/v1/devices").json()["devices"].size(), 0u);
  r = client().post("/api/v1/devices", device, {{"Origin", good}});
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.header("Access-Control-Allow-Origin").value_or(""), good);
  // The server's own page (same origin) may post; a foreign host name pointing here (DNS rebinding) may not.
  const std::string self = server().url();
  r = client().post("/api/v1/devices", {{"name", "d2"}, {"address", "10.0.0.1:1"}, {"key", kKey}},
                    {{"Origin", self}});
  EXPECT_EQ(r.status, 201) << r.body;
  r = client().post("/api/v1/devices", {{"name", "d3"}, {"address", "10.0.0.1:1"}, {"key", kKey}},
                    {{"Origin", "http://rebind.example:" + std::to_string(server().port())},
                     {"Host", "rebind.example:" + std::to_string(server().port())}});
  EXPECT_EQ(r.status, 403);
}

TEST_F(Security, OversizedBodiesAre413) {
  start({}, "max_body_bytes = 1024\nmax_upload_bytes = 65536\n");
  auto r = client().request("POST", "/api/v1/devices", std::string(2000, ' ') + "{}",
                            {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.error_name(), "PAYLOAD_TOO_LARGE");
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");
  r = client().post("/api/upload", {{"filePath", std::string(1100, 'a')}});
  EXPECT_EQ(r.status, 413);
  r = client().request("PUT", "/api/v1/artifacts/big.bin", std::string(65537, 'x'));
  EXPECT_EQ(r.status, 413);
  r = client().request("PUT", "/api/v1/artifacts/ok.bin", std::string(65536, 'x'));
  EXPECT_EQ(r.status, 201) << "exactly at the limit";
  EXPECT_FALSE(fs::exists(root() / "big.bin"));

  // Chunked bodies are counted as they arrive.
  TcpClient tcp(server().host(), server().port());
  std::string req = "PUT /api/v1/artifacts/chunked.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 20; ++i) req += "1000\r\n" + std::string(4096, 'c') + "\r\n";
  req += "0\r\n\r\n";
  tcp.send_all(req);
  ASSERT_TRUE(tcp.wait_closed(10s));
  EXPECT_EQ(tcp.discarded().rfind("HTTP/1.1 413", 0), 0u) << tcp.discarded();
  EXPECT_FALSE(fs::exists(root() / "chunked.bin"));

  // Expect: 100-continue with a declared size over the limit: answered at once, the body is never sent.
  TcpClient tcp2(server().host(), server().port());
  tcp2.send_all(
      "PUT /api/v1/artifacts/x.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
      "Expect: 100-continue\r\n\r\n");
  ASSERT_TRUE(tcp2.wait_closed(10s));
  EXPECT_EQ(tcp2.discarded().rfind("HTTP/1.1 413", 0), 0u) << tcp2.discarded();
  // ... and within the limit the server says 100 Continue first.
  TcpClient tcp3(server().host(), server().port());
  tcp3.send_all(
      "PUT /api/v1/artifacts/y.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  std::string cont;
  ASSERT_EQ(tcp3.read_exact(25, cont, 10s), TcpClient::Status::ok);
  EXPECT_EQ(cont, "HTTP/1.1 100 Continue\r\n\r\n");
  tcp3.send_all("abc");
  std::string status;
  ASSERT_EQ(tcp3.read_exact(12, status, 10s), TcpClient::Status::ok);
  EXPECT_EQ(status, "HTTP/1.1 201");

  // A header over 16 KiB.
  r = client().get("/healthz", {{"X-Big", std::string(17000, 'h')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(client().get("/healthz").status, 200);
  EXPECT_EQ(list_tree(root() / ".uploads"), std::vector<std::string>{})
      << "spooled bodies are removed, also after a 413";
}

TEST_F(Security, SlowClientsAreDisconnected) {
  start({}, "header_timeout_ms = 500\nkeepalive_timeout_ms = 700\n");
  // Half a header, then silence.
  TcpClient slow(server().host(), server().port());
  ASSERT_TRUE(slow.send_all("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  TcpClient silent(server().host(), server().port());
  // Meanwhile others are served.
  EXPECT_EQ(client().get("/healthz").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(slow.wait_closed(10s)) << "a stalled header must be cut off";
  EXPECT_TRUE(silent.wait_closed(10s)) << "a silent connection must be cut off";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  // A header trickled byte by byte past the deadline is cut off too (the deadline is for the whole header).
  TcpClient trickle(server().host(), server().port());
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  bool cut = false;
  const auto start_trickle = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < 200 && !cut; ++i) {
    if (!trickle.send_all(std::string_view(partial).substr(i % partial.size(), 1))) cut = true;
    std::string ignored;
    if (!cut && trickle.read_exact(1, ignored, 50ms) == TcpClient::Status::eof) cut = true;
  }
  EXPECT_TRUE(cut);
  EXPECT_LT(std::chrono::steady_clock::now() - start_trickle, 5s);
  // An idle keep-alive connection is closed after keepalive_timeout.
  TcpClient idle(server().host(), server().port());
  idle.send_all("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(idle.wait_closed(10s));
  EXPECT_EQ(idle.discarded().rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(client().get("/healthz").status, 200);
}

TEST_F(Security, GarbageAndMalformedRequestsGet400AndTheServerKeepsServing) {
  start();
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(64, '\x00') + "\r\n\r\n",
      "hello there\r\n\r\n",
      "GET\r\n\r\n",
      "GET / HTTP/9.9\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
      "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
      "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
      "POST /api/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      std::string("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n"),
  };
  for (const auto& g : garbage) {
    TcpClient tcp(server().host(), server().port());
    tcp.send_all(g);
    ASSERT_TRUE(tcp.wait_closed(10s)) << g;
    EXPECT_EQ(tcp.discarded().rfind("HTTP/1.1 400", 0), 0u) << "for " << json(g).dump() << ": " << tcp.discarded();
    EXPECT_NE(tcp.discarded().find("\"error\""), std::string::npos) << tcp.discarded();
    EXPECT_EQ(client().get("/healthz").status, 200);
  }
  // Bad targets and escapes.
  for (const char* target : {"/api/v1/devices/%", "/api/v1/jobs?limit=%zz", "http://x/healthz", "*"}) {
    TcpClient tcp(server().host(), server().port());
    tcp.send_all(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string head;
    tcp.read_exact(12, head, 10s);
    EXPECT_EQ(head, "HTTP/1.1 400") << target;
  }
  // Random binary noise.
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    TcpClient tcp(server().host(), server().port());
    tcp.send_all(random_bytes(3000, seed));
    tcp.shutdown_write();
    EXPECT_TRUE(tcp.wait_closed(10s));
  }
  EXPECT_EQ(client().get("/healthz").status, 200);
}

TEST_F(Security, StopsCleanlyWithOpenStreamsAndIdleConnections) {
  start();
  EventStream events(server().host(), server().port());
  ASSERT_TRUE(events.next(5s));
  TcpClient idle(server().host(), server().port());
  TcpClient half(server().host(), server().port());
  half.send_all("GET /healthz HTTP/1.1\r\n");
  EXPECT_EQ(client().get("/healthz").status, 200);
  const auto t0 = std::chrono::steady_clock::now();
  auto rc = server().stop();
  EXPECT_EQ(rc, 0) << server().output();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
  EXPECT_TRUE(events.wait_closed(5s));
  server_.reset();
}

}  // namespace
}  // namespace otter::test::http
