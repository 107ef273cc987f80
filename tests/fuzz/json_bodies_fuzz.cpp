// otter fuzzing — JSON request bodies of the API, straight to the handlers (no HTTP parsing, so the fuzzer spends
// its time in the JSON handling): the first byte picks the endpoint (devices: create, update, replace; jobs: create;
// the original POST /api/upload; artifacts: a multipart upload whose fields come from the JSON), the rest is the
// body. Then a fixed follow-up (list devices and jobs, read one back) checks that what was accepted reads back as
// valid JSON. Properties: server_harness.hpp.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "server_harness.hpp"

namespace {

otter::server::http::Request request(std::string method, std::string target, std::string body,
                                     std::string content_type = "application/json") {
  otter::server::http::Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.headers = {{"Host", "127.0.0.1:8080"}, {"Content-Type", std::move(content_type)}};
  r.body = std::move(body);
  r.remote = "127.0.0.1:40000";
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  otter::fuzz::ServerUnderTest server;
  switch (data[0] % 8) {
    case 0:
      server.dispatch(request("POST", "/api/v1/devices", body));
      break;
    case 1:
      server.dispatch(request("PATCH", "/api/v1/devices/esp32-1", body));
      break;
    case 2:
      server.dispatch(request("PUT", "/api/v1/devices/esp32-2", body));
      break;
    case 3:
      server.dispatch(request("POST", "/api/v1/jobs", body));
      break;
    case 4:
      server.dispatch(request("POST", "/api/upload", body));
      break;
    case 5: {  // the original shape, then the same body as a job
      server.dispatch(request("POST", "/api/upload", body));
      server.dispatch(request("POST", "/api/v1/jobs", body));
      break;
    }
    case 6: {  // a multipart upload: the body is the file, its name from the first line
      const auto nl = body.find('\n');
      const std::string name = body.substr(0, nl);
      const std::string content = nl == std::string::npos ? "" : body.substr(nl + 1);
      const std::string b = "--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n" + name +
                            "\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
                            "Content-Type: application/octet-stream\r\n\r\n" +
                            content + "\r\n--XyZ--\r\n";
      server.dispatch(request("POST", "/api/v1/artifacts", b, "multipart/form-data; boundary=XyZ"));
      break;
    }
    default:  // the body as an upload under a name it chooses (PUT /api/v1/artifacts/{name...})
      server.dispatch(request("PUT", "/api/v1/artifacts/" + body.substr(0, body.find('\n')),
                              body.substr(std::min(body.size(), body.find('\n') + 1)), "application/octet-stream"));
      break;
  }
  server.dispatch(request("GET", "/api/v1/devices", ""));
  server.dispatch(request("GET", "/api/v1/devices/esp32-1", ""));
  server.dispatch(request("GET", "/api/v1/jobs", ""));
  server.dispatch(request("GET", "/api/v1/jobs/1", ""));
  server.dispatch(request("GET", "/api/v1/artifacts", ""));
  return 0;
}
