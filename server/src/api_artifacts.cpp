// otter-server — /api/v1/artifacts: list, metadata, delete, and uploads (multipart/form-data or a raw body), always
// through ArtifactStore so nothing is read or written outside the artifact root.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "api_internal.hpp"
#include "otter/server/events.hpp"
#include "otter/server/multipart.hpp"
#include "otter/server/store.hpp"

namespace otter::server::api {

namespace {

constexpr std::size_t kCopyChunk = 1u << 20;
constexpr std::uint64_t kMaxNameField = 1024;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Copies [offset, offset + size) of `path` into the upload.
Result<void> copy_range(const std::string& path, std::uint64_t offset, std::uint64_t size,
                        ArtifactStore::Upload& up) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return make_error(ErrorCode::io, fmt::format("reading the upload: {}", std::strerror(errno)));
  std::vector<char> buf(kCopyChunk);
  while (size > 0) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(size, buf.size()));
    const ssize_t n = ::pread(in.fd, buf.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error(ErrorCode::io, fmt::format("reading the upload: {}", std::strerror(errno)));
    if (n == 0) return make_error(ErrorCode::io, "the upload ended early");
    if (auto w = up.write(buf.data(), static_cast<std::size_t>(n)); !w) return w;
    offset += static_cast<std::uint64_t>(n);
    size -= static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<std::string> read_range(const std::string& path, std::uint64_t offset, std::uint64_t size) {
  Fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) return make_error(ErrorCode::io, fmt::format("reading the upload: {}", std::strerror(errno)));
  std::string out(static_cast<std::size_t>(size), '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(in.fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return make_error(ErrorCode::io, "reading the upload failed");
    done += static_cast<std::size_t>(n);
  }
  return out;
}

Result<ArtifactInfo> store_range(ArtifactStore& store, const std::string& name, const std::string& spool,
                                 std::uint64_t offset, std::uint64_t size) {
  if (size > store.max_upload_bytes())
    return make_error(ErrorCode::payload_too_large,
                      fmt::format("upload exceeds the limit of {} bytes", store.max_upload_bytes()));
  auto up = store.begin_upload(name);
  if (!up) return tl::unexpected(up.error());
  if (auto ok = copy_range(spool, offset, size, *up); !ok) return tl::unexpected(ok.error());
  return up->commit();
}

Result<ArtifactInfo> store_raw(ArtifactStore& store, const std::string& name, const std::string& spool) {
  struct stat st {};
  if (spool.empty() || ::stat(spool.c_str(), &st) != 0)
    return make_error(ErrorCode::io, "the request body was not stored");
  return store_range(store, name, spool, 0, static_cast<std::uint64_t>(st.st_size));
}

Result<ArtifactInfo> store_multipart(ArtifactStore& store, const std::string& content_type, const std::string& spool,
                                     const std::optional<std::string>& query_name) {
  auto boundary = multipart::boundary_from_content_type(content_type);
  if (!boundary) return tl::unexpected(boundary.error());
  auto parts = multipart::scan_file(spool, *boundary);
  if (!parts) return tl::unexpected(parts.error());
  const multipart::Part* file = nullptr;
  const multipart::Part* name_field = nullptr;
  for (const auto& p : *parts) {
    if (p.name == "file") {
      if (file != nullptr) return make_error(ErrorCode::invalid_argument, "several \"file\" fields: upload one file");
      file = &p;
    } else if (p.name == "name") {
      name_field = &p;
    }
  }
  if (file == nullptr)
    return make_error(ErrorCode::invalid_argument, "multipart/form-data upload without a \"file\" field");
  std::string name;
  if (name_field != nullptr) {
    if (name_field->size > kMaxNameField) return make_error(ErrorCode::invalid_argument, "\"name\" field too long");
    auto n = read_range(spool, name_field->offset, name_field->size);
    if (!n) return tl::unexpected(n.error());
    name = std::move(*n);
  } else if (query_name) {
    name = *query_name;
  } else if (file->filename && !file->filename->empty()) {
    // Browsers send a base name; some old ones a full client path: keep the last component only.
    const auto& f = *file->filename;
    const auto cut = f.find_last_of("/\\");
    name = cut == std::string::npos ? f : f.substr(cut + 1);
  }
  if (name.empty())
    return make_error(ErrorCode::invalid_argument,
                      R"(no artifact name: add a "name" field, ?name=..., or a file name to the "file" field)");
  return store_range(store, name, spool, file->offset, file->size);
}

std::string encode_path(std::string_view name) {
  std::string out;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

void audit(const ApiContext& ctx, const std::string& type, const std::string& message, const json& data) {
  EventRecord e;
  e.ts = now_rfc3339();
  e.type = type;
  e.message = message;
  e.data_json = dump(data);
  (void)ctx.store->add_event(std::move(e));  // best effort
}

/// Stores the spooled body as an artifact: `path_name` for PUT /api/v1/artifacts/{name...}, otherwise multipart
/// (Content-Type multipart/form-data) or raw with ?name=.
void upload(const ApiContext& ctx, http::Request& req, const http::Responder& res,
            const std::optional<std::string>& path_name) {
  const std::string spool = req.body_file;
  const std::string content_type = req.header("Content-Type").value_or("");
  std::optional<std::string> query_name;
  if (auto it = req.query.find("name"); it != req.query.end()) query_name = it->second;
  std::string type_lower = content_type;
  for (auto& c : type_lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool multipart = !path_name && type_lower.rfind("multipart/form-data", 0) == 0;
  if (!path_name && !multipart && !query_name)
    return res.reply(http::Response::error(400, ErrorCode::invalid_argument,
                                           "upload as multipart/form-data (field \"file\", optional field \"name\") "
                                           "or send the raw body with ?name=NAME"));
  auto result = std::make_shared<Result<ArtifactInfo>>(make_error(ErrorCode::internal, "upload not processed"));
  ArtifactStore* store = ctx.artifacts;
  offload(
      ctx,
      [store, result, spool, content_type, query_name, path_name, multipart] {
        if (multipart) {
          *result = store_multipart(*store, content_type, spool, query_name);
        } else {
          *result = store_raw(*store, path_name ? *path_name : *query_name, spool);
        }
      },
      [ctx, result, res] {
        if (!*result) return res.reply(http::Response::error(result->error()));
        const auto& info = **result;
        const auto out = artifact_json(info);
        ctx.events->publish("artifact.updated", dump(out));
        audit(ctx, "artifact.uploaded", fmt::format("artifact {} uploaded ({} bytes)", info.name, info.size), out);
        auto r = json_response(201, out);
        r.headers.emplace_back("Location", "/api/v1/artifacts/" + encode_path(info.name));
        res.reply(std::move(r));
      });
}

}  // namespace

void register_artifacts(http::Router& router, const ApiContext& ctx) {
  using http::Request;
  using http::Responder;
  using http::Response;

  router.add("GET", "/api/v1/artifacts", [ctx](Request&, const Responder& res) {
    auto result = std::make_shared<Result<std::vector<ArtifactInfo>>>(make_error(ErrorCode::internal, "not listed"));
    offload(
        ctx, [ctx, result] { *result = ctx.artifacts->list(); },
        [result, res] {
          if (!*result) return res.reply(Response::error(result->error()));
          json list = json::array();
          for (const auto& a : **result) list.push_back(artifact_json(a));
          res.reply(json_response(200, {{"artifacts", list}}));
        });
  });
  router.add(
      "POST", "/api/v1/artifacts", [ctx](Request& req, const Responder& res) { upload(ctx, req, res, std::nullopt); },
      http::BodyMode::spooled);
  router.add(
      "PUT", "/api/v1/artifacts/{name...}",
      [ctx](Request& req, const Responder& res) { upload(ctx, req, res, req.params.at("name")); },
      http::BodyMode::spooled);
  router.add("GET", "/api/v1/artifacts/{name...}", [ctx](Request& req, const Responder& res) {
    const std::string name = req.params.at("name");
    auto result = std::make_shared<Result<ArtifactInfo>>(make_error(ErrorCode::internal, "not resolved"));
    offload(
        ctx, [ctx, result, name] { *result = ctx.artifacts->resolve_hashed(name); },
        [result, res] {
          if (!*result) return res.reply(Response::error(result->error()));
          res.reply(json_response(200, artifact_json(**result)));
        });
  });
  router.add("DELETE", "/api/v1/artifacts/{name...}", [ctx](Request& req, const Responder& res) {
    const std::string name = req.params.at("name");
    auto resolved = ctx.artifacts->resolve(name);
    if (!resolved) return res.reply(Response::error(resolved.error()));
    if (auto ok = ctx.artifacts->remove(name); !ok) return res.reply(Response::error(ok.error()));
    ctx.events->publish("artifact.deleted", dump({{"name", resolved->name}}));
    audit(ctx, "artifact.deleted", fmt::format("artifact {} deleted", resolved->name), {{"name", resolved->name}});
    res.reply(no_content());
  });
}

}  // namespace otter::server::api
