// otter-server — the routes: the original POST /api/upload, REST API v1 (docs/api.md, server/openapi.json), events,
// health, metrics and the placeholder page. Handlers run on the io thread; blocking file work (hashing, copying
// uploads) goes through ApiContext::offload.
#pragma once

#include <functional>
#include <string_view>

#include "otter/server/http.hpp"

namespace otter::server {

class Store;
class ArtifactStore;
class JobEngine;
class EventBus;
class Metrics;
struct ServerConfig;

struct ApiContext {
  const ServerConfig* cfg = nullptr;
  Store* store = nullptr;
  ArtifactStore* artifacts = nullptr;
  JobEngine* jobs = nullptr;
  EventBus* events = nullptr;
  Metrics* metrics = nullptr;
  /// Runs `work` off the io thread, then `then` on it (http::WorkerPool::run). Empty: both run inline.
  std::function<void(std::function<void()> work, std::function<void()> then)> offload;
};

/// Adds every route. The pointers in `ctx` must outlive the router.
void register_routes(http::Router& router, const ApiContext& ctx);

/// The OpenAPI 3 document (server/openapi.json, embedded at build time).
std::string_view openapi_document();

}  // namespace otter::server
