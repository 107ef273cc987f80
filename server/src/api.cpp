// otter-server — route registration, shared JSON helpers, and the routes outside the v1 resources: the original
// POST /api/upload, live events, health, metrics, the OpenAPI document and the placeholder page.
#include <charconv>

#include <fmt/format.h>

#include "api_internal.hpp"
#include "otter/server/api.hpp"
#include "otter/server/config.hpp"
#include "otter/server/events.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"
#include "otter/server/openapi_json.hpp"
#include "otter/server/store.hpp"
#include "otter/server/web_assets.hpp"

namespace otter::server {

std::string_view openapi_document() { return generated::kOpenApi[0].text(); }

namespace api {

/// Content-Type of an embedded web file, by extension.
std::string content_type_for(std::string_view path) {
  const auto ends = [&](std::string_view ext) {
    return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext;
  };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  if (ends(".json")) return "application/json";
  return "application/octet-stream";
}

namespace {

// The original design's two answers, byte for byte.
constexpr std::string_view kFileDoesNotExist = R"({"message": "File does not exist."})";

http::Response upload_accepted(std::int64_t job) {
  return http::Response::json(202,
                              fmt::format(R"({{"message": "File is being transmitted to ESP32.", "job": {}}})", job));
}

/// The device for POST /api/upload: the one named, the configured default, or the only registered one.
Result<std::string> choose_device(const ApiContext& ctx, const std::optional<std::string>& requested) {
  if (requested) {
    auto d = ctx.store->get_device(*requested);
    if (!d) return tl::unexpected(d.error());
    if (!*d) return make_error(ErrorCode::not_found, fmt::format("device '{}' is not registered", *requested));
    return *requested;
  }
  if (!ctx.cfg->default_device.empty()) return ctx.cfg->default_device;
  auto all = ctx.store->list_devices();
  if (!all) return tl::unexpected(all.error());
  if (all->size() == 1) return all->front().name;
  if (all->empty())
    return make_error(ErrorCode::invalid_argument, "no device is registered: add one with POST /api/v1/devices");
  std::string names;
  for (const auto& d : *all) names += (names.empty() ? "" : ", ") + d.name;
  return make_error(ErrorCode::invalid_argument,
                    fmt::format("several devices are registered: choose one with \"device\" (one of: {})", names));
}

void original_upload(const ApiContext& ctx, http::Request& req, const http::Responder& res) {
  auto body = parse_object(req);
  if (!body) return res.reply(http::Response::error(body.error()));
  auto file_path = get_string(*body, "filePath");
  if (!file_path) return res.reply(http::Response::error(file_path.error()));
  if (!*file_path || (*file_path)->empty())
    return res.reply(http::Response::error(400, ErrorCode::invalid_argument, "\"filePath\" is required"));
  auto device = get_string(*body, "device");
  if (!device) return res.reply(http::Response::error(device.error()));
  const std::string path = **file_path;
  const std::optional<std::string> wanted = *device;
  auto resolved = std::make_shared<Result<ArtifactInfo>>(make_error(ErrorCode::internal, "not resolved"));
  offload(
      ctx, [ctx, path, resolved] { *resolved = ctx.artifacts->resolve_hashed(path); },
      [ctx, resolved, wanted, res] {
        if (!*resolved) {
          if (resolved->error().code == ErrorCode::not_found)
            return res.reply(http::Response::json(404, std::string(kFileDoesNotExist)));
          return res.reply(http::Response::error(resolved->error()));
        }
        auto dev = choose_device(ctx, wanted);
        if (!dev) return res.reply(http::Response::error(dev.error()));
        JobRequest jr;
        jr.artifact = (*resolved)->name;
        jr.devices = {*dev};
        jr.origin = "upload";
        auto job = ctx.jobs->submit(std::move(jr));
        if (!job) {
          if (job.error().code == ErrorCode::not_found && job.error().message == "File does not exist.")
            return res.reply(http::Response::json(404, std::string(kFileDoesNotExist)));
          return res.reply(http::Response::error(job.error()));
        }
        res.reply(upload_accepted(job->id));
      });
}

void events_stream(const ApiContext& ctx, const http::Responder& res) {
  auto sink = res.stream();
  if (!sink) return;
  EventBus* bus = ctx.events;
  std::weak_ptr<http::EventSink> weak = sink;
  const auto id = bus->subscribe([weak](const LiveEvent& ev) {
    if (auto s = weak.lock()) s->send(ev.type, ev.data, ev.id);
  });
  sink->on_close([bus, id] { bus->unsubscribe(id); });
}

}  // namespace

http::Response json_response(int status, const json& j) { return http::Response::json(status, dump(j)); }

http::Response no_content() {
  http::Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

Result<json> parse_object(const http::Request& req) {
  if (req.body.empty())
    return make_error(ErrorCode::invalid_argument, "request body is empty: a JSON object is expected");
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) return make_error(ErrorCode::invalid_argument, "request body is not valid JSON");
  if (!j.is_object()) return make_error(ErrorCode::invalid_argument, "request body must be a JSON object");
  return j;
}

Result<std::optional<std::string>> get_string(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return make_error(ErrorCode::invalid_argument, fmt::format("\"{}\" must be a string", key));
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::optional<bool>> get_bool(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean())
    return make_error(ErrorCode::invalid_argument, fmt::format("\"{}\" must be true or false", key));
  return std::optional<bool>(it->get<bool>());
}

Result<std::optional<std::vector<std::string>>> get_string_array(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::vector<std::string>>();
  if (!it->is_array())
    return make_error(ErrorCode::invalid_argument, fmt::format("\"{}\" must be an array of strings", key));
  std::vector<std::string> out;
  for (const auto& v : *it) {
    if (!v.is_string())
      return make_error(ErrorCode::invalid_argument, fmt::format("\"{}\" must be an array of strings", key));
    out.push_back(v.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

Result<void> only_keys(const json& obj, std::initializer_list<std::string_view> known) {
  for (const auto& [k, v] : obj.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end())
      return make_error(ErrorCode::invalid_argument, fmt::format("unknown field \"{}\"", k));
  }
  return {};
}

Result<std::int64_t> query_int(const http::Request& req, const std::string& key, std::int64_t fallback,
                               std::int64_t min, std::int64_t max) {
  const auto it = req.query.find(key);
  if (it == req.query.end() || it->second.empty()) return fallback;
  std::int64_t v = 0;
  const auto* first = it->second.data();
  const auto* last = first + it->second.size();
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last || v < min || v > max)
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("query parameter \"{}\" must be an integer from {} to {}", key, min, max));
  return v;
}

json device_json(const DeviceRecord& d) {
  json last_result = nullptr;
  if (d.last_result_json) {
    last_result = json::parse(*d.last_result_json, nullptr, false);
    if (last_result.is_discarded()) last_result = *d.last_result_json;
  }
  return {{"name", d.name},
          {"address", d.address},
          {"protocol", d.protocol},
          {"tags", d.tags},
          {"created", d.created},
          {"updated", d.updated},
          {"last_seen", d.last_seen ? json(*d.last_seen) : json(nullptr)},
          {"last_result", last_result},
          {"online", d.online}};
}

json artifact_json(const ArtifactInfo& a) {
  return {{"name", a.name}, {"size", a.size}, {"sha256", a.sha256}, {"modified", a.modified}};
}

Result<void> validate_device_name(std::string_view name, const char* what) {
  if (name.empty() || name.size() > 64)
    return make_error(ErrorCode::invalid_argument, fmt::format("{} must be 1 to 64 characters", what));
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok)
      return make_error(ErrorCode::invalid_argument,
                        fmt::format("{} may only contain letters, digits, '.', '_' and '-'", what));
  }
  if (name == "." || name == "..")
    return make_error(ErrorCode::invalid_argument, fmt::format("{} cannot be '{}'", what, name));
  return {};
}

Result<void> validate_address(std::string_view address) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::invalid_argument, fmt::format("address must be host:port ({})", why));
  };
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return bad("an IPv6 address is written [addr]:port");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return bad("bad IPv6 address");
  } else {
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.empty() || host.size() > 253) return bad("bad host");
    for (const char c : host) {
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
      if (!ok) return bad("bad host");
    }
  }
  unsigned value = 0;
  const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 || value > 65535)
    return bad("port must be 1 to 65535");
  return {};
}

void offload(const ApiContext& ctx, std::function<void()> work, std::function<void()> then) {
  if (ctx.offload) return ctx.offload(std::move(work), std::move(then));
  work();
  then();
}

}  // namespace api

void register_routes(http::Router& router, const ApiContext& ctx) {
  using http::Request;
  using http::Responder;
  using http::Response;

  // The web console (web/, embedded at build time): "/" is index.html, the other files by name.
  for (const auto& asset : generated::kWebAssets) {
    const std::string path = asset.path == "index.html" ? "/" : "/" + std::string(asset.path);
    const std::string type = api::content_type_for(asset.path);
    router.add("GET", path, [asset, type](Request&, const Responder& res) {
      Response r;
      r.body = std::string(asset.text());
      r.content_type = type;
      r.headers.emplace_back("Cache-Control", "no-cache");
      r.headers.emplace_back("X-Content-Type-Options", "nosniff");
      if (asset.path == "index.html") {
        // Everything the console needs comes from this server; nothing may be framed or injected.
        r.headers.emplace_back("Content-Security-Policy",
                               "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
        r.headers.emplace_back("X-Frame-Options", "DENY");
      }
      res.reply(std::move(r));
    });
  }
  router.add("GET", "/healthz",
             [](Request&, const Responder& res) { res.reply(Response::json(200, R"({"status":"ok"})")); });
  router.add("GET", "/metrics", [ctx](Request&, const Responder& res) {
    auto unfinished = ctx.store->unfinished_jobs();
    auto devices = ctx.store->list_devices();
    Response r;
    r.body = ctx.metrics->render(unfinished ? unfinished->size() : 0, ctx.jobs->active_transfers(),
                                 devices ? devices->size() : 0);
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.reply(std::move(r));
  });
  router.add("GET", "/api/v1/openapi.json",
             [](Request&, const Responder& res) { res.reply(Response::json(200, std::string(openapi_document()))); });
  router.add("POST", "/api/upload",
             [ctx](Request& req, const Responder& res) { api::original_upload(ctx, req, res); });
  router.add("GET", "/api/v1/events", [ctx](Request&, const Responder& res) { api::events_stream(ctx, res); });
  api::register_devices(router, ctx);
  api::register_artifacts(router, ctx);
  api::register_jobs(router, ctx);
}

}  // namespace otter::server
