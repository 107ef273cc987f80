#include "server_commands.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "format.hpp"
#include "otter/common/http_client.hpp"
#include "otter/common/keyfile.hpp"
#include "progress.hpp"

namespace otter::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(250);

/// Percent-encodes a path segment list: '/' is kept, everything outside [A-Za-z0-9._~-] is %XX.
std::string encode_path(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
        c == '~' || c == '-' || c == '/') {
      out.push_back(ch);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string str(const Json& j, const char* key, std::string fallback = "-") {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return fallback;
  return j[key].get<std::string>();
}

template <class T>
T num(const Json& j, const char* key, T fallback = 0) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return fallback;
  return j[key].get<T>();
}

/// The REST API of one otter-server.
class Api {
 public:
  static Result<Api> open(const ServerArgs& s) {
    std::string url = s.url;
    if (url.empty()) {
      const char* env = std::getenv("OTTER_SERVER");
      url = env != nullptr && *env != '\0' ? env : "http://127.0.0.1:8080";
    }
    auto parsed = http::parse_server_url(url);
    if (!parsed) return tl::unexpected(parsed.error().with_context("--server"));
    std::string token;
    if (!s.token_file.empty()) {
      auto t = read_key_file(s.token_file);
      if (!t) return tl::unexpected(t.error().with_context("--token-file"));
      token = std::move(*t);
    } else if (const char* env = std::getenv("OTTER_TOKEN"); env != nullptr) {
      token = env;
    }
    return Api(std::move(url), *parsed, std::move(token), s.timeout);
  }

  /// A JSON call: the parsed body of a 2xx answer ({} for 204), else the server's error (code and message).
  Result<Json> call(const std::string& method, const std::string& target, const Json* body = nullptr) {
    http::Headers h = headers();
    std::string payload;
    if (body != nullptr) {
      h.emplace_back("Content-Type", "application/json");
      payload = dump_json(*body);
    }
    return result(client_->request(method, target, payload, h, timeout_));
  }

  /// Sends a local file as the raw body.
  Result<Json> send_file(const std::string& method, const std::string& target, const std::string& path) {
    http::Headers h = headers();
    h.emplace_back("Content-Type", "application/octet-stream");
    return result(
        client_->request_file(method, target, path, h, std::max(timeout_, std::chrono::milliseconds(60000))));
  }

  /// Streams /api/v1/events; `on_event` returns false to stop.
  Result<void> events(const std::function<bool(const http::EventParser::Event&)>& on_event) {
    http::EventParser parser;
    bool stopped = false;
    auto reply = client_->stream(
        "/api/v1/events", headers(),
        [&](std::string_view bytes) {
          parser.feed(bytes);
          while (auto ev = parser.next()) {
            if (!on_event(*ev)) {
              stopped = true;
              return false;
            }
          }
          return true;
        },
        std::chrono::minutes(2));
    if (reply.status == 0) return tl::unexpected(unreachable(reply));
    if (reply.status != 200) return tl::unexpected(error_from(reply));
    if (stopped) return {};
    if (!reply.error.empty())
      return make_error(ErrorCode::connection_closed, fmt::format("event stream from {}: {}", url_, reply.error));
    return make_error(ErrorCode::connection_closed, fmt::format("{} closed the event stream", url_));
  }

  [[nodiscard]] const std::string& url() const { return url_; }

 private:
  Api(std::string url, const http::ServerUrl& u, std::string token, double timeout)
      : url_(std::move(url)),
        token_(std::move(token)),
        timeout_(std::max<long long>(1, std::llround(timeout * 1000.0))),
        client_(std::make_unique<http::Client>(u.host, u.port, "otter-cli")) {}

  [[nodiscard]] http::Headers headers() const {
    http::Headers h{{"Accept", "application/json"}};
    if (!token_.empty()) h.emplace_back("Authorization", "Bearer " + token_);
    return h;
  }

  [[nodiscard]] Error unreachable(const http::Reply& r) const {
    return Error(ErrorCode::connect_failed, fmt::format("cannot reach otter-server at {}: {}", url_, r.error));
  }

  [[nodiscard]] static Error error_from(const http::Reply& r) {
    const auto j = Json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      const auto& e = j["error"];
      const auto code = static_cast<ErrorCode>(num<unsigned>(e, "code", static_cast<unsigned>(ErrorCode::internal)));
      return Error(code, str(e, "message", fmt::format("HTTP {}", r.status)));
    }
    if (j.is_object() && j.contains("message") && j["message"].is_string()) {
      return Error(r.status == 404 ? ErrorCode::not_found : ErrorCode::internal, j["message"].get<std::string>());
    }
    ErrorCode code = ErrorCode::internal;
    if (r.status == 401) code = ErrorCode::unauthorized;
    if (r.status == 403) code = ErrorCode::forbidden;
    if (r.status == 404) code = ErrorCode::not_found;
    return Error(code, fmt::format("otter-server answered HTTP {}", r.status));
  }

  Result<Json> result(const http::Reply& r) const {
    if (r.status == 0) return tl::unexpected(unreachable(r));
    if (r.status < 200 || r.status > 299) return tl::unexpected(error_from(r));
    if (r.body.empty()) return Json::object();
    auto j = Json::parse(r.body, nullptr, false);
    if (j.is_discarded())
      return make_error(ErrorCode::protocol, fmt::format("{} answered with something that is not JSON", url_));
    return j;
  }

  std::string url_;
  std::string token_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<http::Client> client_;
};

int report(const ServerArgs& s, const Error& e) {
  if (s.json) {
    std::cout << dump_json(error_json(e)) << std::endl;
  } else {
    std::cerr << error_line(e) << std::endl;
  }
  return exit_code_for(e.code);
}

/// {"ok": true, ...fields of `body`} on stdout.
void print_ok_json(const Json& body) {
  Json out = {{"ok", true}};
  if (body.is_object()) {
    for (const auto& [k, v] : body.items()) out[k] = v;
  }
  std::cout << dump_json(out) << std::endl;
}

/// Prints rows as left-aligned columns.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += i + 1 == r.size() ? r[i] : fmt::format("{:<{}}  ", r[i], width[i]);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
  std::cout.flush();
}

std::string join(const Json& arr, const char* sep = ",") {
  std::string out;
  if (!arr.is_array()) return out;
  for (const auto& v : arr) {
    if (!v.is_string()) continue;
    if (!out.empty()) out += sep;
    out += v.get<std::string>();
  }
  return out;
}

std::string last_result_text(const Json& d) {
  if (!d.contains("last_result") || !d["last_result"].is_object()) return "-";
  const auto& r = d["last_result"];
  std::string s = str(r, "state");
  if (r.contains("error") && r["error"].is_object()) s += " (" + str(r["error"], "name") + ")";
  if (r.contains("job") && r["job"].is_number()) s += fmt::format(" job {}", r["job"].get<std::int64_t>());
  return s;
}

std::string device_line(const Json& d) {
  return fmt::format(
      "{}: {} ({}), {}, last seen {}, last result {}{}", str(d, "name"), str(d, "address"), str(d, "protocol"),
      d.value("online", false) ? "online" : "offline",
      d.contains("last_seen") && d["last_seen"].is_string() ? d["last_seen"].get<std::string>() : "never",
      last_result_text(d), d.contains("tags") && !d["tags"].empty() ? ", tags " + join(d["tags"]) : "");
}

// --- devices ---

Result<Json> device_body(const DeviceArgs& a, bool create) {
  Json body = Json::object();
  if (create) body["name"] = a.name;
  if (a.address) body["address"] = *a.address;
  if (a.protocol) body["protocol"] = *a.protocol;
  if (a.tags) body["tags"] = *a.tags;
  if (a.key_file) {
    // Stock devices' passwords are short (WebREPL: 4..9 characters): the server checks the length per protocol.
    auto key = a.protocol && *a.protocol != "otter" ? read_password_file(*a.key_file) : read_key_file(*a.key_file);
    if (!key) return tl::unexpected(key.error().with_context("--key-file"));
    body["key"] = std::move(*key);
  }
  if (!create && body.empty())
    return make_error(ErrorCode::invalid_argument,
                      "nothing to change: give --address, --key-file, --protocol or --tag");
  return body;
}

// --- jobs ---

bool final_state(const std::string& s) { return s == "succeeded" || s == "failed" || s == "canceled"; }

std::string counts_text(const Json& job) {
  std::map<std::string, int> n;
  int total = 0;
  if (job.contains("devices") && job["devices"].is_array()) {
    for (const auto& t : job["devices"]) {
      ++n[str(t, "state")];
      ++total;
    }
  } else if (job.contains("counts") && job["counts"].is_object()) {
    for (const auto& [k, v] : job["counts"].items()) {
      if (k != "unchanged" && v.is_number()) {
        n[k] = v.get<int>();
        total += v.get<int>();
      }
    }
  }
  std::string out = fmt::format("{}/{} ok", n["succeeded"], total);
  if (n["failed"] > 0) out += fmt::format(", {} failed", n["failed"]);
  if (n["canceled"] > 0) out += fmt::format(", {} canceled", n["canceled"]);
  if (n["running"] > 0) out += fmt::format(", {} running", n["running"]);
  if (n["queued"] > 0) out += fmt::format(", {} queued", n["queued"]);
  return out;
}

void print_job_result(const Json& job) {
  const std::string name = str(job, "as");
  for (const auto& t : job.value("devices", Json::array())) {
    const std::string state = str(t, "state");
    const std::string dev = str(t, "device");
    if (state == "succeeded" && t.value("unchanged", false)) {
      std::cout << fmt::format("unchanged: {}: {} (the device already had it)\n", dev, name);
    } else if (state == "succeeded") {
      std::cout << fmt::format("ok: {}: {} ({}, {} attempt{})\n", dev, name,
                               format_size(num<std::uint64_t>(t, "total")), num<int>(t, "attempts"),
                               num<int>(t, "attempts") == 1 ? "" : "s");
    } else if (t.contains("error") && t["error"].is_object()) {
      const auto& e = t["error"];
      std::cout << fmt::format("{}: {}: {} ({}): {}\n", state, dev, str(e, "name"), num<int>(e, "code"),
                               str(e, "message"));
    } else {
      std::cout << fmt::format("{}: {}: {}\n", state, dev, name);
    }
  }
  std::cout << fmt::format("job {} {}: {} ({}, sha256 {}…)", num<std::int64_t>(job, "id"), str(job, "state"),
                           counts_text(job), format_size(num<std::uint64_t>(job, "size")),
                           str(job, "sha256").substr(0, 8))
            << std::endl;
}

/// Polls the job until it is final, drawing one progress bar (bytes of every device together). The job, or an error.
Result<Json> follow_job(Api& api, std::int64_t id, bool bar_enabled) {
  ProgressBar bar(bar_enabled);
  bool started = false;
  for (;;) {
    auto job = api.call("GET", fmt::format("/api/v1/jobs/{}", id));
    if (!job) return job;
    const std::string state = str(*job, "state");
    std::uint64_t done = 0;
    std::uint64_t total = 0;
    const auto& devices = job->value("devices", Json::array());
    std::size_t finished = 0;
    for (const auto& t : devices) {
      // A device that already had the content counts as done.
      const auto t_total = num<std::uint64_t>(t, "total", num<std::uint64_t>(*job, "size"));
      total += t_total;
      done += final_state(str(t, "state")) ? t_total : num<std::uint64_t>(t, "bytes");
      if (final_state(str(t, "state"))) ++finished;
    }
    const std::string label = devices.size() == 1 ? fmt::format("job {} → {}", id, str(devices[0], "device"))
                                                  : fmt::format("job {}: {}/{}", id, finished, devices.size());
    if (!started) {
      bar.start(label, done);
      started = true;
    }
    bar.set_label(label);
    bar.update(done, total);
    if (final_state(state)) {
      bar.clear();
      return job;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

int finish_job(const ServerArgs& s, const Result<Json>& job) {
  if (!job) return report(s, job.error());
  const bool ok = str(*job, "state") == "succeeded";
  if (s.json) {
    std::cout << dump_json(Json{{"ok", ok}, {"job", *job}}) << std::endl;
  } else if (!s.quiet || !ok) {
    print_job_result(*job);
  }
  return ok ? kExitOk : kExitFailed;
}

std::string event_line(const http::EventParser::Event& ev) {
  const auto d = Json::parse(ev.data, nullptr, false);
  if (ev.type == "target.progress")
    return fmt::format("job {} {}: {} / {} ({})", num<std::int64_t>(d, "job"), str(d, "device"),
                       format_size(num<std::uint64_t>(d, "bytes")), format_size(num<std::uint64_t>(d, "total")),
                       format_rate(num<double>(d, "rate")));
  if (ev.type == "target.updated") {
    std::string s = fmt::format("job {} {}: {}", num<std::int64_t>(d, "job"), str(d, "device"), str(d, "state"));
    if (d.contains("error") && d["error"].is_object())
      s += fmt::format(" {} ({}): {}", str(d["error"], "name"), num<int>(d["error"], "code"),
                       str(d["error"], "message"));
    return s;
  }
  if (ev.type.rfind("job.", 0) == 0)
    return fmt::format("job {} {}: {} → {} ({})", num<std::int64_t>(d, "id"), str(d, "state"), str(d, "artifact"),
                       str(d, "as"), counts_text(d));
  if (ev.type.rfind("device.", 0) == 0) return fmt::format("device {}", str(d, "name"));
  return ev.data;
}

}  // namespace

int run_devices(const ServerArgs& s, const DeviceArgs& a) {
  auto api = Api::open(s);
  if (!api) return report(s, api.error());
  const std::string path = "/api/v1/devices/" + encode_path(a.name);
  Result<Json> r = Json::object();
  if (a.action == "list") {
    r = api->call("GET", a.tag.empty() ? "/api/v1/devices" : "/api/v1/devices?tag=" + encode_path(a.tag));
    if (!r) return report(s, r.error());
    if (s.json) {
      print_ok_json(*r);
    } else if (!s.quiet) {
      std::vector<std::vector<std::string>> rows = {
          {"NAME", "ADDRESS", "PROTOCOL", "ONLINE", "LAST SEEN", "LAST RESULT", "TAGS"}};
      for (const auto& d : r->value("devices", Json::array())) {
        rows.push_back({str(d, "name"), str(d, "address"), str(d, "protocol"),
                        d.value("online", false) ? "yes" : "no", str(d, "last_seen"), last_result_text(d),
                        join(d.value("tags", Json::array()))});
      }
      if (rows.size() == 1) {
        std::cout << "no devices registered (add one: otter --server URL devices add NAME --address HOST:PORT "
                     "--key-file FILE)"
                  << std::endl;
      } else {
        print_table(rows);
      }
    }
    return kExitOk;
  }
  if (a.action == "show") {
    r = api->call("GET", path);
  } else if (a.action == "add" || a.action == "set") {
    auto body = device_body(a, a.action == "add");
    if (!body) return report(s, body.error());
    r = a.action == "add" ? api->call("POST", "/api/v1/devices", &*body) : api->call("PATCH", path, &*body);
  } else if (a.action == "rm") {
    r = api->call("DELETE", path);
    if (r) r = Json{{"name", a.name}, {"deleted", true}};
  } else if (a.action == "probe") {
    r = api->call("POST", path + "/probe");
  }
  if (!r) return report(s, r.error());
  if (s.json) {
    print_ok_json(*r);
  } else if (!s.quiet) {
    if (a.action == "rm") {
      std::cout << fmt::format("removed device {}", a.name) << std::endl;
    } else if (a.action == "probe") {
      std::cout << fmt::format("{}: online, device id {}, firmware {}, free {}", a.name, str(*r, "device_id"),
                               str(*r, "fw_state"), format_size(num<std::uint64_t>(*r, "free")))
                << std::endl;
    } else {
      std::cout << device_line(*r) << std::endl;
    }
  }
  return kExitOk;
}

int run_artifacts(const ServerArgs& s, const ArtifactArgs& a) {
  auto api = Api::open(s);
  if (!api) return report(s, api.error());
  Result<Json> r = Json::object();
  if (a.action == "list") {
    r = api->call("GET", "/api/v1/artifacts");
    if (!r) return report(s, r.error());
    if (s.json) {
      print_ok_json(*r);
    } else if (!s.quiet) {
      std::vector<std::vector<std::string>> rows = {{"NAME", "SIZE", "SHA-256", "MODIFIED"}};
      for (const auto& x : r->value("artifacts", Json::array())) {
        rows.push_back(
            {str(x, "name"), format_size(num<std::uint64_t>(x, "size")), str(x, "sha256"), str(x, "modified")});
      }
      if (rows.size() == 1) {
        std::cout << "no artifacts (upload one: otter --server URL artifacts upload FILE)" << std::endl;
      } else {
        print_table(rows);
      }
    }
    return kExitOk;
  }
  if (a.action == "upload") {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(a.file, ec))
      return report(s, Error(ErrorCode::not_found, fmt::format("{}: not a readable regular file", a.file)));
    const std::string name = a.name.empty() ? std::filesystem::path(a.file).filename().string() : a.name;
    r = api->send_file("PUT", "/api/v1/artifacts/" + encode_path(name), a.file);
  } else if (a.action == "rm") {
    r = api->call("DELETE", "/api/v1/artifacts/" + encode_path(a.name));
    if (r) r = Json{{"name", a.name}, {"deleted", true}};
  }
  if (!r) return report(s, r.error());
  if (s.json) {
    print_ok_json(*r);
  } else if (!s.quiet) {
    if (a.action == "rm") {
      std::cout << fmt::format("removed artifact {}", a.name) << std::endl;
    } else {
      std::cout << fmt::format("uploaded {} ({}, sha256 {})", str(*r, "name"),
                               format_size(num<std::uint64_t>(*r, "size")), str(*r, "sha256"))
                << std::endl;
    }
  }
  return kExitOk;
}

int run_deploy(const ServerArgs& s, const DeployArgs& a) {
  if (a.devices.empty() == a.tag.empty())
    return report(
        s, Error(ErrorCode::invalid_argument, "give the target devices: --device NAME (repeatable) or --tag TAG"));
  auto api = Api::open(s);
  if (!api) return report(s, api.error());
  Json body = {{"artifact", a.artifact}};
  if (!a.devices.empty()) body["devices"] = a.devices;
  if (!a.tag.empty()) body["tag"] = a.tag;
  if (!a.as.empty()) body["as"] = a.as;
  body["reboot"] = a.reboot;
  auto job = api->call("POST", "/api/v1/jobs", &body);
  if (!job) return report(s, job.error());
  const auto id = num<std::int64_t>(*job, "id");
  if (a.no_wait) {
    if (s.json) {
      std::cout << dump_json(Json{{"ok", true}, {"job", *job}}) << std::endl;
    } else if (!s.quiet) {
      std::cout << fmt::format("job {} queued for {} device(s); follow it with: otter --server {} watch {}", id,
                               job->value("devices", Json::array()).size(), api->url(), id)
                << std::endl;
    }
    return kExitOk;
  }
  return finish_job(s, follow_job(*api, id, !s.quiet && !s.json));
}

int run_jobs(const ServerArgs& s, const JobArgs& a) {
  auto api = Api::open(s);
  if (!api) return report(s, api.error());
  if (a.action == "list") {
    auto r = api->call("GET", fmt::format("/api/v1/jobs?limit={}", a.limit));
    if (!r) return report(s, r.error());
    if (s.json) {
      print_ok_json(*r);
    } else if (!s.quiet) {
      std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "ARTIFACT", "AS", "DEVICES", "CREATED"}};
      for (const auto& j : r->value("jobs", Json::array())) {
        rows.push_back({std::to_string(num<std::int64_t>(j, "id")), str(j, "state"), str(j, "artifact"), str(j, "as"),
                        counts_text(j), str(j, "created")});
      }
      if (rows.size() == 1) {
        std::cout << "no jobs yet" << std::endl;
      } else {
        print_table(rows);
      }
    }
    return kExitOk;
  }
  const std::string path = fmt::format("/api/v1/jobs/{}", a.id);
  auto r = a.action == "cancel" ? api->call("POST", path + "/cancel") : api->call("GET", path);
  if (!r) return report(s, r.error());
  if (s.json) {
    std::cout << dump_json(Json{{"ok", true}, {"job", *r}}) << std::endl;
  } else if (!s.quiet) {
    print_job_result(*r);
  }
  return kExitOk;
}

int run_watch(const ServerArgs& s, const WatchArgs& a) {
  auto api = Api::open(s);
  if (!api) return report(s, api.error());
  if (a.job) return finish_job(s, follow_job(*api, *a.job, !s.quiet && !s.json));
  // Every event, one line each, until the server closes the stream (or the user presses Ctrl-C).
  auto r = api->events([&](const http::EventParser::Event& ev) {
    if (ev.type.empty()) {  // comments and keep-alives; the first one says the stream is open
      if (ev.comment == "connected" && !s.quiet)
        std::cerr << fmt::format("otter: watching events on {} (Ctrl-C to stop)", api->url()) << std::endl;
      return true;
    }
    if (s.json) {
      Json data = Json::parse(ev.data, nullptr, false);
      if (data.is_discarded()) data = ev.data;
      std::cout << dump_json(Json{{"type", ev.type}, {"id", ev.id}, {"data", data}}) << std::endl;
    } else {
      std::cout << fmt::format("{:<16} {}", ev.type, event_line(ev)) << std::endl;
    }
    return true;
  });
  if (!r) return report(s, r.error());
  return kExitOk;
}

}  // namespace otter::cli
