// otter-server — helpers shared by the api*.cpp route files (private to the server library).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "json_views.hpp"
#include "otter/server/api.hpp"
#include "otter/server/artifacts.hpp"
#include "otter/server/http.hpp"
#include "otter/server/model.hpp"

namespace otter::server::api {

using json = nlohmann::ordered_json;
using views::dump;
using views::error_json;
using views::job_json;
http::Response json_response(int status, const json& j);
http::Response no_content();

/// The body as a JSON object, or INVALID_ARGUMENT ("request body is not valid JSON: ...").
Result<json> parse_object(const http::Request& req);

/// Field readers: a missing (or null) field gives nullopt; a field of the wrong type INVALID_ARGUMENT.
Result<std::optional<std::string>> get_string(const json& obj, const char* key);
Result<std::optional<bool>> get_bool(const json& obj, const char* key);
Result<std::optional<std::vector<std::string>>> get_string_array(const json& obj, const char* key);
/// Fails with INVALID_ARGUMENT naming the first key that is not in `known`.
Result<void> only_keys(const json& obj, std::initializer_list<std::string_view> known);

/// A non-negative integer query parameter; `fallback` if absent.
Result<std::int64_t> query_int(const http::Request& req, const std::string& key, std::int64_t fallback,
                               std::int64_t min, std::int64_t max);

json device_json(const DeviceRecord& d);
json artifact_json(const ArtifactInfo& a);

/// Device names and tags: [A-Za-z0-9._-]{1,64}, not "." or "..".
Result<void> validate_device_name(std::string_view name, const char* what = "device name");
/// "host:port" or "[v6]:port", port 1..65535, host a DNS name or an IP literal.
Result<void> validate_address(std::string_view address);

/// Runs work off the io thread (ctx.offload), or inline when no offload is configured.
void offload(const ApiContext& ctx, std::function<void()> work, std::function<void()> then);

void register_devices(http::Router& router, const ApiContext& ctx);
void register_artifacts(http::Router& router, const ApiContext& ctx);
void register_jobs(http::Router& router, const ApiContext& ctx);

}  // namespace otter::server::api
