// otter-server — /api/v1/devices: the device registry (the key is write-only) and probing.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "api_internal.hpp"
#include "otter/common/keyfile.hpp"
#include "otter/server/events.hpp"
#include "otter/server/gzip.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/store.hpp"

namespace otter::server::api {

namespace {

constexpr std::size_t kMaxKeySize = 1024;
constexpr std::size_t kMaxTags = 32;

Result<void> validate_protocol(const std::string& protocol) {
  if (protocol == "otter" || protocol == "arduino-ota" || protocol == "webrepl" || protocol == "legacy") return {};
  return make_error(ErrorCode::invalid_argument,
                    fmt::format("unknown protocol \"{}\" (otter, arduino-ota, webrepl or legacy)", protocol));
}

/// The device's secret, per protocol: otter's pre-shared key (>= 16 bytes), WebREPL's password (4..9 characters),
/// ArduinoOTA's password (optional), none for legacy.
Result<void> validate_key(const std::string& protocol, const std::string& key) {
  if (key.size() > kMaxKeySize)
    return make_error(ErrorCode::invalid_argument, fmt::format("\"key\" must be at most {} bytes", kMaxKeySize));
  if (protocol == "otter" && key.size() < kMinKeySize)
    return make_error(ErrorCode::invalid_argument, fmt::format("\"key\" must be at least {} bytes", kMinKeySize));
  if (protocol == "webrepl" && (key.size() < 4 || key.size() > 9))
    return make_error(ErrorCode::invalid_argument,
                      "\"key\" of a webrepl device is its WebREPL password: 4 to 9 characters");
  return {};
}

/// Whether a device of this protocol must be registered with a key.
bool key_required(const std::string& protocol) { return protocol == "otter" || protocol == "webrepl"; }

Result<std::vector<std::string>> validate_tags(std::vector<std::string> tags) {
  if (tags.size() > kMaxTags)
    return make_error(ErrorCode::invalid_argument, fmt::format("at most {} tags", kMaxTags));
  for (const auto& t : tags) {
    if (auto ok = validate_device_name(t, "a tag"); !ok) return tl::unexpected(ok.error());
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
}

/// Applies the writable fields present in `body` to `d` (`full`: a PUT, where address is required).
Result<void> apply_fields(const json& body, DeviceRecord& d, bool creating, bool full) {
  if (auto ok = only_keys(body, {"name", "address", "protocol", "key", "tags", "created", "updated", "last_seen",
                                 "last_result", "online"});
      !ok)
    return ok;
  auto address = get_string(body, "address");
  auto protocol = get_string(body, "protocol");
  auto key = get_string(body, "key");
  auto tags = get_string_array(body, "tags");
  for (const auto* r : {&address, &protocol, &key}) {
    if (!*r) return tl::unexpected(r->error());
  }
  if (!tags) return tl::unexpected(tags.error());
  if (*address) {
    if (auto ok = validate_address(**address); !ok) return ok;
    d.address = **address;
  } else if (creating || full) {
    return make_error(ErrorCode::invalid_argument, "\"address\" (host:port) is required");
  }
  if (*protocol) {
    if (auto ok = validate_protocol(**protocol); !ok) return ok;
    d.protocol = **protocol;
  } else if (creating || full) {
    d.protocol = "otter";
  }
  if (*key) {
    if (auto ok = validate_key(d.protocol, **key); !ok) return ok;
    d.key = **key;
  } else if (creating && key_required(d.protocol)) {
    return make_error(
        ErrorCode::invalid_argument,
        d.protocol == "webrepl"
            ? std::string("\"key\" (the device's WebREPL password) is required")
            : fmt::format("\"key\" (the device's pre-shared key, at least {} bytes) is required", kMinKeySize));
  } else if (*protocol && !creating) {
    // The protocol changed and the stored key stays: it must suit the new protocol.
    if (auto ok = validate_key(d.protocol, d.key); !ok)
      return make_error(ErrorCode::invalid_argument,
                        R"(changing "protocol" needs a "key" that suits it: )" + ok.error().message);
  }
  if (*tags) {
    auto t = validate_tags(std::move(**tags));
    if (!t) return tl::unexpected(t.error());
    d.tags = std::move(*t);
  } else if (creating || full) {
    d.tags.clear();
  }
  return {};
}

void publish_device(const ApiContext& ctx, const std::string& type, const json& data) {
  ctx.events->publish(type, dump(data));
}

void audit(const ApiContext& ctx, const std::string& type, const std::string& device, const std::string& message) {
  EventRecord e;
  e.ts = now_rfc3339();
  e.type = type;
  e.device = device;
  e.message = message;
  (void)ctx.store->add_event(std::move(e));  // the audit trail is best effort; the change itself succeeded
}

void create_device(const ApiContext& ctx, http::Request& req, const http::Responder& res) {
  auto body = parse_object(req);
  if (!body) return res.reply(http::Response::error(body.error()));
  auto name = get_string(*body, "name");
  if (!name) return res.reply(http::Response::error(name.error()));
  if (!*name) return res.reply(http::Response::error(400, ErrorCode::invalid_argument, "\"name\" is required"));
  if (auto ok = validate_device_name(**name); !ok) return res.reply(http::Response::error(ok.error()));
  DeviceRecord d;
  d.name = **name;
  if (auto ok = apply_fields(*body, d, true, true); !ok) return res.reply(http::Response::error(ok.error()));
  auto created = ctx.store->create_device(std::move(d));
  if (!created) return res.reply(http::Response::error(created.error()));
  const auto out = device_json(*created);
  publish_device(ctx, "device.created", out);
  audit(ctx, "device.created", created->name,
        fmt::format("device {} registered at {}", created->name, created->address));
  auto r = json_response(201, out);
  r.headers.emplace_back("Location", "/api/v1/devices/" + created->name);
  res.reply(std::move(r));
}

/// The serialised device list of the latest store version, per tag filter (a few entries at most).
class ListCache {
 public:
  struct Entry {
    std::uint64_t version = 0;
    std::shared_ptr<const std::string> text;
  };
  Result<Entry> get(std::uint64_t version, const std::string& key,
                    const std::function<Result<std::string>()>& build) {
    {
      const std::lock_guard lock(mu_);
      if (version != version_) {
        entries_.clear();
        version_ = version;
      }
      if (auto it = entries_.find(key); it != entries_.end()) return Entry{version, it->second};
    }
    auto text = build();
    if (!text) return tl::unexpected(text.error());
    auto shared = std::make_shared<const std::string>(std::move(*text));
    const std::lock_guard lock(mu_);
    if (version == version_ && entries_.size() < kMaxEntries) entries_.emplace(key, shared);
    return Entry{version, shared};
  }

 private:
  static constexpr std::size_t kMaxEntries = 64;
  std::mutex mu_;
  std::uint64_t version_ = 0;
  std::map<std::string, std::shared_ptr<const std::string>> entries_;
};

/// The registered device, or NOT_FOUND (404) naming it.
Result<DeviceRecord> registered_device(const ApiContext& ctx, const std::string& name) {
  auto d = ctx.store->get_device(name);
  if (!d) return tl::unexpected(d.error());
  if (!*d) return make_error(ErrorCode::not_found, fmt::format("device '{}' is not registered", name));
  return std::move(**d);
}

void update_device(const ApiContext& ctx, http::Request& req, const http::Responder& res, bool full) {
  const auto& name = req.params.at("name");
  auto body = parse_object(req);
  if (!body) return res.reply(http::Response::error(body.error()));
  auto existing = registered_device(ctx, name);
  if (!existing) return res.reply(http::Response::error(existing.error()));
  auto body_name = get_string(*body, "name");
  if (!body_name) return res.reply(http::Response::error(body_name.error()));
  if (*body_name && **body_name != name)
    return res.reply(http::Response::error(400, ErrorCode::invalid_argument,
                                           "devices cannot be renamed: delete and register it again"));
  DeviceRecord d = *existing;
  if (auto ok = apply_fields(*body, d, false, full); !ok) return res.reply(http::Response::error(ok.error()));
  auto updated = ctx.store->update_device(d);
  if (!updated) return res.reply(http::Response::error(updated.error()));
  const auto out = device_json(*updated);
  publish_device(ctx, "device.updated", out);
  audit(ctx, "device.updated", name, fmt::format("device {} updated", name));
  res.reply(json_response(200, out));
}

}  // namespace

void register_devices(http::Router& router, const ApiContext& ctx) {
  using http::Request;
  using http::Responder;
  using http::Response;

  // The list is what a console polls and what a fleet dashboard hammers: its serialised form is cached per tag
  // filter until a device changes (Store::devices_version), and answered with an ETag (304 on If-None-Match).
  auto cache = std::make_shared<ListCache>();
  router.add("GET", "/api/v1/devices", [ctx, cache](Request& req, const Responder& res) {
    const auto tag_it = req.query.find("tag");
    const std::string tag = tag_it == req.query.end() ? std::string() : tag_it->second;
    const bool filtered = tag_it != req.query.end();
    const std::uint64_t version = ctx.store->devices_version();
    const std::string key = filtered ? "tag:" + tag : std::string("*");
    const auto build_json = [&]() -> Result<std::string> {
      auto all = ctx.store->list_devices();
      if (!all) return tl::unexpected(all.error());
      json list = json::array();
      for (const auto& d : *all) {
        if (filtered && std::find(d.tags.begin(), d.tags.end(), tag) == d.tags.end()) continue;
        list.push_back(device_json(d));
      }
      return dump(json{{"devices", std::move(list)}});
    };
    const auto accept = req.header("Accept-Encoding");
    const bool gzip = accept && accepts_gzip(*accept);
    auto body = gzip ? cache->get(version, "gz " + key,
                                  [&]() -> Result<std::string> {
                                    auto plain = cache->get(version, key, build_json);
                                    if (!plain) return tl::unexpected(plain.error());
                                    return gzip_compress(*plain->text, 9);  // once per version
                                  })
                     : cache->get(version, key, build_json);
    if (!body) return res.reply(Response::error(body.error()));
    // A weak validator: the same for the plain and the gzip form of one version of the list.
    const std::string etag = fmt::format("W/\"d{}\"", body->version);
    if (const auto inm = req.header("If-None-Match"); inm && *inm == etag) {
      Response r;
      r.status = 304;
      r.headers.emplace_back("ETag", etag);
      return res.reply(std::move(r));
    }
    Response r;
    r.shared_body = body->text;
    r.headers.emplace_back("ETag", etag);
    r.headers.emplace_back("Vary", "Accept-Encoding");
    if (gzip) r.headers.emplace_back("Content-Encoding", "gzip");
    r.headers.emplace_back("Cache-Control", "no-cache");
    res.reply(std::move(r));
  });
  router.add("POST", "/api/v1/devices", [ctx](Request& req, const Responder& res) { create_device(ctx, req, res); });
  router.add("GET", "/api/v1/devices/{name}", [ctx](Request& req, const Responder& res) {
    const auto& name = req.params.at("name");
    auto d = registered_device(ctx, name);
    if (!d) return res.reply(Response::error(d.error()));
    res.reply(json_response(200, device_json(*d)));
  });
  router.add("PATCH", "/api/v1/devices/{name}",
             [ctx](Request& req, const Responder& res) { update_device(ctx, req, res, false); });
  router.add("PUT", "/api/v1/devices/{name}",
             [ctx](Request& req, const Responder& res) { update_device(ctx, req, res, true); });
  router.add("DELETE", "/api/v1/devices/{name}", [ctx](Request& req, const Responder& res) {
    const auto& name = req.params.at("name");
    auto d = registered_device(ctx, name);
    if (!d) return res.reply(Response::error(d.error()));
    if (auto ok = ctx.store->delete_device(name); !ok) return res.reply(Response::error(ok.error()));
    publish_device(ctx, "device.deleted", {{"name", name}});
    audit(ctx, "device.deleted", name, fmt::format("device {} removed", name));
    res.reply(no_content());
  });
  router.add("POST", "/api/v1/devices/{name}/probe", [ctx](Request& req, const Responder& res) {
    const std::string name = req.params.at("name");
    auto d = registered_device(ctx, name);
    if (!d) return res.reply(Response::error(d.error()));
    ctx.jobs->probe(name, [name, res](Result<ProbeResult> r) {
      if (!r) return res.reply(Response::error(r.error()));
      if (r->error) {
        auto e = Response::error(*r->error);
        return res.reply(std::move(e));
      }
      res.reply(json_response(200, {{"device", name},
                                    {"online", r->online},
                                    {"device_id", r->device_id},
                                    {"caps", r->caps},
                                    {"fw_state", r->fw_state},
                                    {"max_size", r->max_size},
                                    {"free", r->free}}));
    });
  });
}

}  // namespace otter::server::api
