// otter-server — /api/v1/jobs: submit, list (paged, newest first), get, cancel.
#include <charconv>
#include <limits>

#include <fmt/format.h>

#include "api_internal.hpp"
#include "otter/server/jobs.hpp"

namespace otter::server::api {

namespace {

constexpr std::int64_t kDefaultPage = 50;
constexpr std::int64_t kMaxPage = 500;
constexpr std::size_t kMaxDevicesPerJob = 10000;

Result<std::int64_t> parse_id(const std::string& text) {
  std::int64_t id = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || id <= 0)
    return make_error(ErrorCode::invalid_argument, fmt::format("job id must be a positive integer, not '{}'", text));
  return id;
}

Result<JobRequest> job_request(const json& body) {
  if (auto ok = only_keys(body, {"artifact", "devices", "tag", "as", "reboot", "kind"}); !ok)
    return tl::unexpected(ok.error());
  JobRequest jr;
  auto artifact = get_string(body, "artifact");
  if (!artifact) return tl::unexpected(artifact.error());
  if (!*artifact || (*artifact)->empty())
    return make_error(ErrorCode::invalid_argument, "\"artifact\" (a path inside the artifact root) is required");
  jr.artifact = **artifact;
  auto devices = get_string_array(body, "devices");
  if (!devices) return tl::unexpected(devices.error());
  auto tag = get_string(body, "tag");
  if (!tag) return tl::unexpected(tag.error());
  if (*devices && *tag) return make_error(ErrorCode::invalid_argument, R"(give either "devices" or "tag", not both)");
  if (*devices) {
    if ((*devices)->empty()) return make_error(ErrorCode::invalid_argument, "\"devices\" is empty");
    if ((*devices)->size() > kMaxDevicesPerJob)
      return make_error(ErrorCode::invalid_argument, fmt::format("at most {} devices per job", kMaxDevicesPerJob));
    for (const auto& d : **devices) {
      if (auto ok = validate_device_name(d); !ok) return tl::unexpected(ok.error());
    }
    jr.devices = std::move(**devices);
  } else if (*tag) {
    if (auto ok = validate_device_name(**tag, "tag"); !ok) return tl::unexpected(ok.error());
    jr.tag = **tag;
  } else {
    return make_error(ErrorCode::invalid_argument, R"(name the targets: "devices": [...] or "tag": "...")");
  }
  auto as = get_string(body, "as");
  if (!as) return tl::unexpected(as.error());
  if (*as) {
    if ((*as)->empty() || (*as)->size() > 255)
      return make_error(ErrorCode::invalid_argument, "\"as\" must be 1 to 255 bytes");
    jr.as_name = **as;
  }
  auto kind = get_string(body, "kind");
  if (!kind) return tl::unexpected(kind.error());
  if (*kind) {
    if (**kind != "file" && **kind != "firmware" && **kind != "filesystem")
      return make_error(ErrorCode::invalid_argument,
                        R"("kind" must be "file", "firmware" or "filesystem" (arduino-ota devices only))");
    jr.kind = **kind;
  }
  auto reboot = get_bool(body, "reboot");
  if (!reboot) return tl::unexpected(reboot.error());
  jr.reboot = reboot->value_or(false);
  jr.origin = "api";
  return jr;
}

}  // namespace

void register_jobs(http::Router& router, const ApiContext& ctx) {
  using http::Request;
  using http::Responder;
  using http::Response;

  router.add("POST", "/api/v1/jobs", [ctx](Request& req, const Responder& res) {
    auto body = parse_object(req);
    if (!body) return res.reply(Response::error(body.error()));
    auto jr = job_request(*body);
    if (!jr) return res.reply(Response::error(jr.error()));
    // Hash off the io thread first; submit() then finds the digest in the artifact store's cache.
    auto resolved = std::make_shared<Result<ArtifactInfo>>(make_error(ErrorCode::internal, "not resolved"));
    auto request = std::make_shared<JobRequest>(std::move(*jr));
    offload(
        ctx, [ctx, resolved, request] { *resolved = ctx.artifacts->resolve_hashed(request->artifact); },
        [ctx, resolved, request, res] {
          if (!*resolved) return res.reply(Response::error(resolved->error()));
          request->artifact = (*resolved)->name;
          auto job = ctx.jobs->submit(std::move(*request));
          if (!job) return res.reply(Response::error(job.error()));
          auto r = json_response(201, job_json(*job));
          r.headers.emplace_back("Location", fmt::format("/api/v1/jobs/{}", job->id));
          res.reply(std::move(r));
        });
  });
  router.add("GET", "/api/v1/jobs", [ctx](Request& req, const Responder& res) {
    auto limit = query_int(req, "limit", kDefaultPage, 1, kMaxPage);
    if (!limit) return res.reply(Response::error(limit.error()));
    auto before = query_int(req, "before", 0, 0, std::numeric_limits<std::int64_t>::max());
    if (!before) return res.reply(Response::error(before.error()));
    auto jobs = ctx.jobs->list(*before, static_cast<int>(*limit));
    if (!jobs) return res.reply(Response::error(jobs.error()));
    json list = json::array();
    for (const auto& j : *jobs) list.push_back(job_json(j));
    json next = nullptr;
    if (static_cast<std::int64_t>(jobs->size()) == *limit && !jobs->empty() && jobs->back().id > 1)
      next = jobs->back().id;
    res.reply(json_response(200, {{"jobs", list}, {"next", next}}));
  });
  router.add("GET", "/api/v1/jobs/{id}", [ctx](Request& req, const Responder& res) {
    auto id = parse_id(req.params.at("id"));
    if (!id) return res.reply(Response::error(id.error()));
    auto job = ctx.jobs->get(*id);
    if (!job) return res.reply(Response::error(job.error()));
    if (!*job)
      return res.reply(Response::error(404, ErrorCode::not_found, fmt::format("job {} does not exist", *id)));
    res.reply(json_response(200, job_json(**job)));
  });
  router.add("POST", "/api/v1/jobs/{id}/cancel", [ctx](Request& req, const Responder& res) {
    auto id = parse_id(req.params.at("id"));
    if (!id) return res.reply(Response::error(id.error()));
    auto job = ctx.jobs->cancel(*id);
    if (!job) return res.reply(Response::error(job.error()));
    res.reply(json_response(200, job_json(*job)));
  });
}

}  // namespace otter::server::api
