// otter-server — configuration → store → artifact root → event bus, metrics → device channel + job engine →
// recovery → HTTP server, all on one io_context. SIGINT / SIGTERM stop it gracefully (exit 0).
#include <csignal>
#include <cstdio>
#include <memory>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "otter/server/api.hpp"
#include "otter/server/artifacts.hpp"
#include "otter/server/config.hpp"
#include "otter/server/events.hpp"
#include "otter/server/http_server.hpp"
#include "otter/server/jobs.hpp"
#include "otter/server/metrics.hpp"
#include "otter/server/store.hpp"

namespace {

constexpr std::chrono::seconds kDrainTimeout{5};
constexpr unsigned kWorkerThreads = 2;

int fail(const otter::Error& e, int code = 1) {
  std::fprintf(stderr, "otter-server: %s\n", e.to_string().c_str());
  return code;
}

int run(int argc, char** argv) {
  using namespace otter;
  using namespace otter::server;

  auto cfg = load_config(argc, argv);
  if (!cfg) {
    if (cfg.error().code == ErrorCode::ok) {
      std::fputs(cfg.error().message.c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "otter-server: %s\n", cfg.error().message.c_str());
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("otter-server");
  spdlog::set_default_logger(logger);
  const auto level = spdlog::level::from_str(cfg->log_level);
  if (level == spdlog::level::off && cfg->log_level != "off") {
    std::fprintf(stderr, "otter-server: unknown log level '%s' (trace|debug|info|warn|error|off)\n",
                 cfg->log_level.c_str());
    return 2;
  }
  spdlog::set_level(level);

  auto store = open_sqlite_store(cfg->db_path());
  if (!store) return fail(store.error().with_context("opening " + cfg->db_path()));
  auto artifacts = ArtifactStore::open(cfg->artifacts_dir, cfg->max_upload_bytes);
  if (!artifacts) return fail(artifacts.error());

  boost::asio::io_context io;
  EventBus events;
  Metrics metrics;
  auto channel = make_otter_channel(io, *cfg);
  auto jobs = make_job_engine(io, *cfg, **store, **artifacts, events, *channel, &metrics);
  if (auto r = jobs->recover(); !r) return fail(r.error().with_context("recovering unfinished jobs"));

  http::WorkerPool workers(io, kWorkerThreads);
  http::Router router;
  ApiContext ctx;
  ctx.cfg = &*cfg;
  ctx.store = store->get();
  ctx.artifacts = artifacts->get();
  ctx.jobs = jobs.get();
  ctx.events = &events;
  ctx.metrics = &metrics;
  ctx.offload = [&workers](std::function<void()> work, std::function<void()> then) {
    workers.run(std::move(work), std::move(then));
  };
  register_routes(router, ctx);

  http::ServerOptions opt;
  opt.host = cfg->listen_host;
  opt.port = cfg->listen_port;
  opt.max_body_bytes = cfg->max_body_bytes;
  opt.max_upload_bytes = cfg->max_upload_bytes;
  opt.spool_dir = (*artifacts)->root() + "/.uploads";
  opt.header_timeout = cfg->header_timeout;
  opt.keepalive_timeout = cfg->keepalive_timeout;
  opt.cors_origins = cfg->cors_origins;
  opt.token = cfg->token;
  opt.loopback = cfg->loopback_only();
  opt.on_request = [&metrics](int status, double seconds) { metrics.http_request(status, seconds); };
  auto server = http::Server::listen(io, opt, router);
  if (!server) return fail(server.error());

  std::printf("otter-server: listening on %s\n", (*server)->url().c_str());
  std::fflush(stdout);
  spdlog::info("listening on {} (artifacts {}, data {}, token {})", (*server)->url(), (*artifacts)->root(),
               cfg->data_dir, cfg->token_required() ? "required" : "not required");

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer deadline(io);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    (*server)->stop([&io] { io.stop(); });
    // Requests still running after the drain timeout (e.g. a probe waiting on a device) are abandoned; unfinished
    // jobs are persisted and resume at the next start.
    deadline.expires_after(kDrainTimeout);
    deadline.async_wait([&io](const boost::system::error_code& tec) {
      if (tec) return;
      spdlog::warn("connections still open after {} s: stopping anyway", kDrainTimeout.count());
      io.stop();
    });
  });
  io.run();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc or a failed thread start
    std::fprintf(stderr, "otter-server: fatal: %s\n", e.what());
    return 1;
  }
}
