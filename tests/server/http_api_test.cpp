// otter-server — every REST endpoint against the real server process (real SQLite, real files): success,
// validation errors and 404s, plus the original POST /api/upload messages byte for byte.
#include <gtest/gtest.h>

#include <set>

#include "server_fixture.hpp"

namespace otter::test::http {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kUnreachable = "127.0.0.1:1";  // connection refused at once

class Api : public ServerTest {};

TEST_F(Api, HealthMetricsOpenApiAndThePlaceholderPage) {
  start();
  auto r = client().get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json(), json({{"status", "ok"}}));
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");

  r = client().get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or("").rfind("text/plain; version=0.0.4", 0), 0u);
  EXPECT_NE(r.body.find("otter_http_requests_total"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("otter_devices"), std::string::npos);

  r = client().get("/api/v1/openapi.json");
  EXPECT_EQ(r.status, 200);
  ASSERT_TRUE(r.json().is_object());
  EXPECT_TRUE(r.json()["paths"].contains("/api/upload"));
  EXPECT_EQ(r.body, read_file(std::string(OTTER_SOURCE_DIR) + "/server/openapi.json"));

  r = client().get("/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or("").rfind("text/html", 0), 0u);
  EXPECT_NE(r.body.find("id=\"filePath\""), std::string::npos);
  EXPECT_NE(r.header("Content-Security-Policy").value_or("").find("default-src 'self'"), std::string::npos);
  EXPECT_EQ(r.body, read_file(std::string(OTTER_SOURCE_DIR) + "/web/index.html")) << "the console is embedded";
  r = client().get("/app.js");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "text/javascript; charset=utf-8");
  EXPECT_NE(r.body.find("'/api/upload'"), std::string::npos);
  EXPECT_NE(r.body.find("alert("), std::string::npos);
  EXPECT_EQ(client().get("/style.css").header("Content-Type").value_or(""), "text/css; charset=utf-8");
  EXPECT_EQ(client().get("/favicon.svg").header("Content-Type").value_or(""), "image/svg+xml");

  r = client().request("HEAD", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(r.header("Content-Length").value_or(""), "15");
  EXPECT_EQ(client().connects(), 1) << "all of this on one kept-alive connection";
}

TEST_F(Api, UnknownPathsAre404AndWrongMethods405WithAllow) {
  start();
  for (const char* path : {"/nope", "/api/v1", "/api/v1/devices/a/b/c", "/api/v2/devices", "/api/upload/x"}) {
    auto r = client().get(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.error_name(), "NOT_FOUND") << path;
    EXPECT_FALSE(r.message().empty()) << path;
  }
  auto r = client().del("/api/v1/devices");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow").value_or(""), "GET, HEAD, POST");
  EXPECT_TRUE(r.json().contains("error"));
  r = client().get("/api/upload");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("Allow").value_or(""), "POST");
  r = client().request("PATCH", "/api/v1/jobs/1");
  EXPECT_EQ(r.status, 405);
  r = client().request("OPTIONS", "/api/v1/devices/x");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.header("Allow").value_or(""), "GET, HEAD, PATCH, PUT, DELETE, OPTIONS");
}

TEST_F(Api, DevicesCreateReadUpdateDelete) {
  start();
  auto r = client().post("/api/v1/devices",
                         {{"name", "dev-1"}, {"address", "10.0.0.5:12345"}, {"key", kKey}, {"tags", {"lab", "b"}}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.header("Location").value_or(""), "/api/v1/devices/dev-1");
  auto d = r.json();
  EXPECT_EQ(d["name"], "dev-1");
  EXPECT_EQ(d["address"], "10.0.0.5:12345");
  EXPECT_EQ(d["protocol"], "otter");
  EXPECT_EQ(d["tags"], json({"b", "lab"}));
  EXPECT_EQ(d["online"], false);
  EXPECT_TRUE(d["last_seen"].is_null());
  EXPECT_TRUE(d["last_result"].is_null());
  EXPECT_FALSE(d.contains("key"));
  EXPECT_EQ(r.body.find(kKey), std::string::npos) << "the key is write-only";

  r = client().post("/api/v1/devices", {{"name", "dev-1"}, {"address", "10.0.0.6:1"}, {"key", kKey}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.error_name(), "CONFLICT");

  add_device("dev-2", "[::1]:9000", kKey, {"lab"});
  add_device("dev-3", "esp32-kitchen.local:12345");
  r = client().get("/api/v1/devices");
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.json()["devices"].size(), 3u);
  EXPECT_EQ(r.body.find(kKey), std::string::npos);
  r = client().get("/api/v1/devices?tag=lab");
  ASSERT_EQ(r.json()["devices"].size(), 2u);

  r = client().get("/api/v1/devices/dev-2");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["address"], "[::1]:9000");

  r = client().patch("/api/v1/devices/dev-2", {{"address", "10.0.0.9:4000"}, {"tags", {"x"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["address"], "10.0.0.9:4000");
  EXPECT_EQ(r.json()["tags"], json({"x"}));
  r = client().patch("/api/v1/devices/dev-2", {{"key", "another-key-of-16-bytes+"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["address"], "10.0.0.9:4000") << "PATCH keeps what it does not name";

  r = client().put("/api/v1/devices/dev-2", {{"address", "10.0.0.10:4001"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["tags"], json::array()) << "PUT replaces";
  r = client().put("/api/v1/devices/dev-2", {{"tags", {"a"}}});
  EXPECT_EQ(r.status, 400) << "PUT needs the address";

  r = client().del("/api/v1/devices/dev-2");
  EXPECT_EQ(r.status, 204);
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(client().get("/api/v1/devices/dev-2").status, 404);
  EXPECT_EQ(client().del("/api/v1/devices/dev-2").status, 404);
  EXPECT_EQ(client().patch("/api/v1/devices/nope", {{"address", "a:1"}}).status, 404);
  EXPECT_EQ(client().request("POST", "/api/v1/devices/nope/probe").status, 404);
  EXPECT_EQ(client().get("/api/v1/devices").json()["devices"].size(), 2u);
}

TEST_F(Api, DeviceListIsCachedButNeverStale) {
  start();
  add_device("dev-1", "127.0.0.1:1", kKey, {"lab"});
  auto r = client().get("/api/v1/devices");
  ASSERT_EQ(r.status, 200);
  const auto etag = r.header("ETag").value_or("");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(r.header("Vary").value_or(""), "Accept-Encoding");

  // Unchanged: 304 without a body; the gzip form is the same list.
  r = client().get("/api/v1/devices", {{"If-None-Match", etag}});
  EXPECT_EQ(r.status, 304);
  EXPECT_TRUE(r.body.empty());
  r = client().get("/api/v1/devices", {{"Accept-Encoding", "gzip"}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("Content-Encoding").value_or(""), "gzip");
  EXPECT_EQ(r.header("ETag").value_or(""), etag);
  EXPECT_EQ(json::parse(gunzip(r.body))["devices"].size(), 1U);
  r = client().get("/api/v1/devices", {{"Accept-Encoding", "gzip;q=0"}});
  EXPECT_FALSE(r.header("Content-Encoding").has_value());

  // Every kind of change shows at once: create, update, a probe's contact, delete; per tag filter too.
  std::string last = etag;
  const auto expect_changed = [&](const char* what, std::size_t devices, std::size_t lab) {
    auto now = client().get("/api/v1/devices", {{"If-None-Match", last}, {"Accept-Encoding", "gzip"}});
    ASSERT_EQ(now.status, 200) << what;
    EXPECT_NE(now.header("ETag").value_or(""), last) << what;
    EXPECT_EQ(json::parse(gunzip(now.body))["devices"].size(), devices) << what;
    last = now.header("ETag").value_or("");
    EXPECT_EQ(client().get("/api/v1/devices?tag=lab").json()["devices"].size(), lab) << what;
  };
  add_device("dev-2", "127.0.0.1:2", kKey, {"lab"});
  expect_changed("create", 2, 2);
  ASSERT_EQ(client().patch("/api/v1/devices/dev-2", {{"tags", {"field"}}}).status, 200);
  expect_changed("update", 2, 1);
  client().request("POST", "/api/v1/devices/dev-1/probe");  // fails to connect: recorded as a contact
  expect_changed("probe", 2, 1);
  ASSERT_EQ(client().del("/api/v1/devices/dev-1").status, 204);
  expect_changed("delete", 1, 0);
}

TEST_F(Api, DeviceValidation) {
  start();
  auto code = [&](const json& body) { return client().post("/api/v1/devices", body); };
  const json ok = {{"name", "d"}, {"address", "10.0.0.1:12345"}, {"key", kKey}};
  auto with = [&](const char* k, const json& v) {
    json b = ok;
    b[k] = v;
    return b;
  };
  auto without = [&](const char* k) {
    json b = ok;
    b.erase(k);
    return b;
  };
  for (const json& bad_name :
       {json(""), json(std::string(65, 'a')), json("a/b"), json("a b"), json(".."), json("dev\n1"), json(5)}) {
    auto r = code(with("name", bad_name));
    EXPECT_EQ(r.status, 400) << bad_name;
    EXPECT_EQ(r.error_name(), "INVALID_ARGUMENT");
  }
  EXPECT_EQ(code(with("name", std::string(64, 'a'))).status, 201);
  for (const char* bad : {"10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "host:x", ":80", "[::1:80", "a b:1", "h:-1"}) {
    auto r = code(with("address", bad));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.message().find("address"), std::string::npos) << r.body;
  }
  // Stock devices (issue 7): the key is the protocol's secret — WebREPL's password (4..9 characters), ArduinoOTA's
  // optional password, nothing for the original receiver.
  auto r = code(with("protocol", "webrepl"));  // an otter-sized key is no WebREPL password
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.message().find("4 to 9 characters"), std::string::npos) << r.body;
  json wr = with("protocol", "webrepl");
  wr["name"] = "wr";
  wr["key"] = "secret1";
  EXPECT_EQ(code(wr).status, 201);
  wr.erase("key");
  wr["name"] = "wr2";
  EXPECT_EQ(code(wr).status, 400);  // WebREPL always has a password
  for (const char* p : {"arduino-ota", "legacy"}) {
    json b = without("key");
    b["name"] = std::string("no-key-") + p;
    b["protocol"] = p;
    EXPECT_EQ(code(b).status, 201) << p;
  }
  r = code(with("protocol", "ftp"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.message().find("otter, arduino-ota, webrepl or legacy"), std::string::npos) << r.body;
  EXPECT_EQ(client().patch("/api/v1/devices/no-key-legacy", {{"protocol", "otter"}}).status, 400)
      << "an otter device needs a pre-shared key";
  EXPECT_EQ(code(with("key", "short")).status, 400);
  EXPECT_EQ(code(without("key")).status, 400);
  EXPECT_EQ(code(without("address")).status, 400);
  EXPECT_EQ(code(without("name")).status, 400);
  EXPECT_EQ(code(with("tags", "lab")).status, 400);
  EXPECT_EQ(code(with("tags", json({"bad tag"}))).status, 400);
  EXPECT_EQ(code(with("adress", "typo:1")).status, 400);
  EXPECT_EQ(code(json::array()).status, 400);
  r = client().request("POST", "/api/v1/devices", "{\"name\": ", {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");
  EXPECT_FALSE(r.message().empty());
  r = client().request("POST", "/api/v1/devices", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_FALSE(r.message().empty());
  add_device("x", "10.0.0.1:1");
  EXPECT_EQ(client().patch("/api/v1/devices/x", {{"name", "y"}}).status, 400) << "no renames";
  EXPECT_EQ(client().patch("/api/v1/devices/x", {{"key", "short"}}).status, 400);
}

TEST_F(Api, ArtifactsUploadListGetDelete) {
  start();
  const std::string a = random_bytes(200000, 1);
  const std::string b = random_bytes(1000, 2);
  // multipart with a "name" field after the file
  auto r = client().request("POST", "/api/v1/artifacts",
                            multipart_body({{"file", "local.bin", a}, {"name", std::nullopt, "fw/app.bin"}}, "BnD"),
                            {{"Content-Type", "multipart/form-data; boundary=BnD"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json()["name"], "fw/app.bin");
  EXPECT_EQ(r.json()["size"], a.size());
  EXPECT_EQ(r.json()["sha256"], sha256_hex(a));
  EXPECT_EQ(r.header("Location").value_or(""), "/api/v1/artifacts/fw/app.bin");
  EXPECT_EQ(read_file(root() / "fw/app.bin"), a);
  // multipart, named by the file name
  r = client().request("POST", "/api/v1/artifacts", multipart_body({{"file", "b.txt", b}}, "q"),
                       {{"Content-Type", "multipart/form-data; boundary=q"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json()["name"], "b.txt");
  // raw body: PUT with the name in the path, POST with ?name=
  r = client().request("PUT", "/api/v1/artifacts/raw/c.bin", b, {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json()["name"], "raw/c.bin");
  r = client().request("POST", "/api/v1/artifacts?name=raw%2Fd%20e.bin", a,
                       {{"Content-Type", "application/octet-stream"}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json()["name"], "raw/d e.bin");
  EXPECT_EQ(r.header("Location").value_or(""), "/api/v1/artifacts/raw/d%20e.bin");
  // overwrite
  r = client().request("PUT", "/api/v1/artifacts/b.txt", "new", {});
  ASSERT_EQ(r.status, 201);
  EXPECT_EQ(read_file(root() / "b.txt"), "new");

  r = client().get("/api/v1/artifacts");
  ASSERT_EQ(r.status, 200);
  const auto list = r.json()["artifacts"];
  ASSERT_EQ(list.size(), 4u) << r.body;
  EXPECT_EQ(list[0]["name"], "b.txt");
  EXPECT_EQ(list[1]["name"], "fw/app.bin");
  EXPECT_EQ(list[1]["sha256"], sha256_hex(a));
  EXPECT_TRUE(list[1]["modified"].is_string());
  EXPECT_EQ(list[3]["name"], "raw/d e.bin");

  r = client().get("/api/v1/artifacts/raw/d%20e.bin");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["size"], a.size());
  EXPECT_EQ(r.json()["sha256"], sha256_hex(a));
  r = client().get("/api/v1/artifacts/missing.bin");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.message(), "File does not exist.");
  r = client().get("/api/v1/artifacts/fw");
  EXPECT_EQ(r.status, 400) << "a directory";

  EXPECT_EQ(client().del("/api/v1/artifacts/raw/c.bin").status, 204);
  EXPECT_FALSE(std::filesystem::exists(root() / "raw/c.bin"));
  EXPECT_EQ(client().del("/api/v1/artifacts/raw/c.bin").status, 404);
  EXPECT_EQ(client().get("/api/v1/artifacts").json()["artifacts"].size(), 3u);
  EXPECT_TRUE(std::filesystem::is_empty(root() / ".uploads")) << "spooled bodies are removed";
}

TEST_F(Api, ArtifactUploadErrors) {
  start();
  auto upload = [&](const std::string& ctype, const std::string& body,
                    const std::string& target = "/api/v1/artifacts") {
    return client().request("POST", target, body, {{"Content-Type", ctype}});
  };
  auto r = upload("application/octet-stream", "x");
  EXPECT_EQ(r.status, 400) << "no name";
  EXPECT_NE(r.message().find("multipart"), std::string::npos);
  r = upload("multipart/form-data; boundary=q", multipart_body({{"name", std::nullopt, "a.bin"}}, "q"));
  EXPECT_EQ(r.status, 400) << "no file field";
  r = upload("multipart/form-data; boundary=q", "--q\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx");
  EXPECT_EQ(r.status, 400) << "no closing boundary";
  r = upload("multipart/form-data", multipart_body({{"file", "a", "x"}}, "q"));
  EXPECT_EQ(r.status, 400) << "no boundary parameter";
  r = upload("multipart/form-data; boundary=q", multipart_body({{"file", std::nullopt, "x"}}, "q"));
  EXPECT_EQ(r.status, 400) << "no name at all";
  for (const char* bad : {"..%2Fx", ".hidden", "a%2F%2Fb", "%2Fabs", "a%5Cb", ".otter%2Fx"}) {
    r = upload("application/octet-stream", "x", std::string("/api/v1/artifacts?name=") + bad);
    EXPECT_EQ(r.status, 400) << bad << " " << r.body;
  }
  r = client().request("PUT", "/api/v1/artifacts/a/../../b", "x");
  EXPECT_EQ(r.status, 400);
  r = upload("multipart/form-data; boundary=q", multipart_body({{"file", "../../evil.bin", "x"}}, "q"));
  EXPECT_EQ(r.status, 201) << "only the last component of a client file name is used: " << r.body;
  EXPECT_EQ(r.json()["name"], "evil.bin");
  EXPECT_EQ(list_tree(root()), (std::vector<std::string>{".uploads/", "evil.bin"}));
}

TEST_F(Api, JobsSubmitListGetCancel) {
  start({}, "retries = 5\nretry_base_ms = 2000\n");  // unreachable devices keep jobs running for a while
  write_file(root() / "fw.bin", "firmware");
  add_device("d1", kUnreachable, kKey, {"lab"});
  add_device("d2", kUnreachable, kKey, {"lab"});
  EventStream events(server().host(), server().port());

  auto r = client().post("/api/v1/jobs", {{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"as", "lib/fw.bin"}});
  ASSERT_EQ(r.status, 201) << r.body;
  const auto job = r.json();
  const auto id = job["id"].get<std::int64_t>();
  EXPECT_EQ(r.header("Location").value_or(""), "/api/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(job["artifact"], "fw.bin");
  EXPECT_EQ(job["sha256"], sha256_hex("firmware"));
  EXPECT_EQ(job["as"], "lib/fw.bin");
  EXPECT_EQ(job["kind"], "file");
  EXPECT_EQ(job["reboot"], false);
  EXPECT_TRUE(job["finished"].is_null());
  ASSERT_EQ(job["devices"].size(), 1u);
  EXPECT_EQ(job["devices"][0]["device"], "d1");
  for (const char* k : {"state", "bytes", "total", "unchanged", "attempts", "error"})
    EXPECT_TRUE(job["devices"][0].contains(k)) << k;
  EXPECT_TRUE(std::set<std::string>({"queued", "running"}).count(job["state"].get<std::string>()));

  r = client().post("/api/v1/jobs", {{"artifact", "fw.bin"}, {"tag", "lab"}, {"kind", "firmware"}, {"reboot", true}});
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.json()["devices"].size(), 2u);
  EXPECT_EQ(r.json()["kind"], "firmware");
  r = client().post("/api/v1/jobs", {{"artifact", root().string() + "/fw.bin"}, {"devices", {"d2"}}});
  ASSERT_EQ(r.status, 201) << "an absolute path inside the root: " << r.body;
  const auto last = r.json()["id"].get<std::int64_t>();

  // Paging: newest first, with a cursor.
  r = client().get("/api/v1/jobs?limit=2");
  ASSERT_EQ(r.status, 200);
  auto page = r.json();
  ASSERT_EQ(page["jobs"].size(), 2u);
  EXPECT_EQ(page["jobs"][0]["id"], last);
  EXPECT_EQ(page["jobs"][1]["id"], last - 1);
  ASSERT_FALSE(page["next"].is_null());
  r = client().get("/api/v1/jobs?limit=2&before=" + std::to_string(page["next"].get<std::int64_t>()));
  page = r.json();
  ASSERT_EQ(page["jobs"].size(), 1u);
  EXPECT_EQ(page["jobs"][0]["id"], id);
  EXPECT_TRUE(page["next"].is_null());
  EXPECT_EQ(client().get("/api/v1/jobs").json()["jobs"].size(), 3u);
  for (const char* q : {"limit=0", "limit=501", "limit=x", "before=-1", "limit=1e3"})
    EXPECT_EQ(client().get(std::string("/api/v1/jobs?") + q).status, 400) << q;

  r = client().get("/api/v1/jobs/" + std::to_string(id));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["id"], id);
  EXPECT_EQ(client().get("/api/v1/jobs/9999").status, 404);
  EXPECT_EQ(client().get("/api/v1/jobs/abc").status, 400);
  EXPECT_EQ(client().get("/api/v1/jobs/-1").status, 400);

  // Cancel: the job ends canceled.
  r = client().request("POST", "/api/v1/jobs/" + std::to_string(id) + "/cancel");
  ASSERT_EQ(r.status, 200) << r.body;
  auto finished = events.next_matching(
      [&](const EventStream::Event& e) {
        return e.type == "job.finished" && json::parse(e.data, nullptr, false).value("id", 0) == id;
      },
      20s);
  ASSERT_TRUE(finished) << server().output();
  r = client().get("/api/v1/jobs/" + std::to_string(id));
  EXPECT_EQ(r.json()["state"], "canceled") << r.body;
  EXPECT_FALSE(r.json()["finished"].is_null());
  EXPECT_EQ(r.json()["devices"][0]["state"], "canceled");
  EXPECT_EQ(client().request("POST", "/api/v1/jobs/9999/cancel").status, 404);
  EXPECT_EQ(client().request("POST", "/api/v1/jobs/x/cancel").status, 400);
}

TEST_F(Api, JobValidation) {
  start();
  write_file(root() / "fw.bin", "firmware");
  std::filesystem::create_directories(root() / "dir");
  add_device("d1", kUnreachable);
  auto submit = [&](const json& body) { return client().post("/api/v1/jobs", body); };
  EXPECT_EQ(submit({{"devices", {"d1"}}}).status, 400);                                        // no artifact
  EXPECT_EQ(submit({{"artifact", "fw.bin"}}).status, 400);                                     // no targets
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", json::array()}}).status, 400);         // empty
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"tag", "x"}}).status, 400);  // both
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", "d1"}}).status, 400);                  // not an array
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"kind", "bootloader"}}).status, 400);
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"reboot", "yes"}}).status, 400);
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"as", ""}}).status, 400);
  EXPECT_EQ(submit({{"artifact", "fw.bin"}, {"devices", {"d1"}}, {"priority", 1}}).status, 400);
  auto r = submit({{"artifact", "fw.bin"}, {"devices", {"ghost"}}});
  EXPECT_EQ(r.status, 404) << r.body;
  r = submit({{"artifact", "fw.bin"}, {"tag", "nobody"}});
  EXPECT_EQ(r.status, 400) << r.body;
  r = submit({{"artifact", "missing.bin"}, {"devices", {"d1"}}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.message(), "File does not exist.");
  EXPECT_EQ(submit({{"artifact", "../fw.bin"}, {"devices", {"d1"}}}).status, 403);
  EXPECT_EQ(submit({{"artifact", "/etc/passwd"}, {"devices", {"d1"}}}).status, 403);
  EXPECT_EQ(submit({{"artifact", "dir"}, {"devices", {"d1"}}}).status, 400);
  EXPECT_EQ(client().request("POST", "/api/v1/jobs", "not json").status, 400);
  EXPECT_TRUE(client().get("/api/v1/jobs").json()["jobs"].empty()) << "no job was recorded";
}

TEST_F(Api, OriginalUploadMessagesByteForByte) {
  start();
  write_file(root() / "app.py", "print('hi')\n");
  std::filesystem::create_directories(root() / "lib");

  auto r = client().post("/api/upload", {{"filePath", "nope.bin"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"message": "File does not exist."})");
  EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json");

  r = client().post("/api/upload", {{"filePath", "app.py"}});
  EXPECT_EQ(r.status, 400) << "no device registered";
  EXPECT_NE(r.message().find("no device"), std::string::npos) << r.body;

  add_device("only", kUnreachable);
  r = client().post("/api/upload", {{"filePath", "app.py"}});
  ASSERT_EQ(r.status, 202) << r.body;
  const auto job = r.json()["job"].get<std::int64_t>();
  EXPECT_EQ(r.body, R"({"message": "File is being transmitted to ESP32.", "job": )" + std::to_string(job) + "}");
  auto j = client().get("/api/v1/jobs/" + std::to_string(job)).json();
  EXPECT_EQ(j["origin"], "upload");
  EXPECT_EQ(j["devices"][0]["device"], "only");
  EXPECT_EQ(j["as"], "app.py");

  add_device("second", kUnreachable);
  r = client().post("/api/upload", {{"filePath", "app.py"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.message().find("only"), std::string::npos) << r.body;
  EXPECT_NE(r.message().find("second"), std::string::npos) << r.body;
  r = client().post("/api/upload", {{"filePath", "app.py"}, {"device", "second"}});
  EXPECT_EQ(r.status, 202) << r.body;
  r = client().post("/api/upload", {{"filePath", "app.py"}, {"device", "ghost"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.message().find("ghost"), std::string::npos);

  // Errors are JSON with a "message" (the original page alert()s it), never an HTML page.
  for (const std::string& body :
       {std::string("{"), std::string("[]"), std::string(""), std::string("{\"filePath\": 5}"),
        std::string("{\"filePath\": \"\"}"), std::string("filePath=app.py")}) {
    r = client().request("POST", "/api/upload", body, {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.header("Content-Type").value_or(""), "application/json") << body;
    EXPECT_FALSE(r.message().empty()) << body;
  }
  r = client().post("/api/upload", {{"filePath", "lib"}, {"device", "only"}});
  EXPECT_EQ(r.status, 400) << "a directory";
  r = client().post("/api/upload", {{"filePath", "../secret"}, {"device", "only"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_FALSE(r.message().empty());
}

TEST_F(Api, OriginalUploadUsesTheDefaultDevice) {
  start({"--default-device", "second"});
  write_file(root() / "app.py", "x");
  add_device("first", kUnreachable);
  add_device("second", kUnreachable);
  auto r = client().post("/api/upload", {{"filePath", "app.py"}});
  ASSERT_EQ(r.status, 202) << r.body;
  auto j = client().get("/api/v1/jobs/" + std::to_string(r.json()["job"].get<int>())).json();
  EXPECT_EQ(j["devices"][0]["device"], "second");
}

TEST_F(Api, EventStreamCarriesDeviceAndJobEvents) {
  start();
  EventStream events(server().host(), server().port());
  EXPECT_NE(events.response_header().find("Content-Type: text/event-stream"), std::string::npos);
  auto ev = events.next(5s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->comment, "connected");
  add_device("d1", kUnreachable);
  ev = events.next_matching([](const EventStream::Event& e) { return e.type == "device.created"; }, 10s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(json::parse(ev->data)["name"], "d1");
  EXPECT_EQ(ev->data.find(kKey), std::string::npos);
  EXPECT_FALSE(ev->id.empty());
  write_file(root() / "a.bin", "abc");
  auto r = client().post("/api/v1/jobs", {{"artifact", "a.bin"}, {"devices", {"d1"}}});
  ASSERT_EQ(r.status, 201);
  ev = events.next_matching([](const EventStream::Event& e) { return e.type == "job.created"; }, 10s);
  ASSERT_TRUE(ev);
  EXPECT_EQ(json::parse(ev->data).value("id", 0), r.json()["id"].get<int>());
}

}  // namespace
}  // namespace otter::test::http
