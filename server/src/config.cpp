#include "otter/server/config.hpp"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include "otter/common/keyfile.hpp"

namespace otter::server {

bool ServerConfig::loopback_only() const {
  if (listen_host == "localhost" || listen_host == "::1") return true;
  in_addr a{};
  if (::inet_pton(AF_INET, listen_host.c_str(), &a) == 1) return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return make_error(ErrorCode::invalid_argument, "listen address must be [v6]:port: " + text);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
      return make_error(ErrorCode::invalid_argument, "listen address needs a port: " + text);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) host = "127.0.0.1";
  unsigned long p = 0;
  try {
    std::size_t used = 0;
    p = std::stoul(port, &used);
    if (used != port.size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    return make_error(ErrorCode::invalid_argument, "bad port in listen address: " + text);
  }
  if (p > 65535) return make_error(ErrorCode::invalid_argument, "port out of range: " + text);
  return std::pair{host, static_cast<std::uint16_t>(p)};
}

Result<void> apply_toml(ServerConfig& cfg, const std::string& text, const std::string& source) {
  toml::table t;
  try {
    t = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return make_error(ErrorCode::config, fmt::format("{}: {}", source, e.description()));
  }
  auto fail = [&](const char* key, const char* want) {
    return make_error(ErrorCode::config, fmt::format("{}: '{}' must be {}", source, key, want));
  };
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    if (k == "listen") {
      auto v = node.value<std::string>();
      if (!v) return fail("listen", "a string host:port");
      auto hp = parse_listen(*v);
      if (!hp) return tl::unexpected(hp.error());
      cfg.listen_host = hp->first;
      cfg.listen_port = hp->second;
    } else if (k == "data" || k == "artifacts" || k == "token_file" || k == "default_device" || k == "log_level" ||
               k == "advertise_address") {
      auto v = node.value<std::string>();
      if (!v) return fail(k.c_str(), "a string");
      if (k == "data") cfg.data_dir = *v;
      if (k == "artifacts") cfg.artifacts_dir = *v;
      if (k == "token_file") cfg.token_file = *v;
      if (k == "default_device") cfg.default_device = *v;
      if (k == "advertise_address") cfg.advertise_address = *v;
      if (k == "log_level") cfg.log_level = *v;
    } else if (k == "cors_origins") {
      const auto* arr = node.as_array();
      if (arr == nullptr) return fail("cors_origins", "an array of strings");
      cfg.cors_origins.clear();
      for (const auto& o : *arr) {
        auto v = o.value<std::string>();
        if (!v) return fail("cors_origins", "an array of strings");
        cfg.cors_origins.push_back(*v);
      }
    } else if (k == "concurrency" || k == "retries" || k == "connect_timeout_ms" || k == "idle_timeout_ms" ||
               k == "max_body_bytes" || k == "max_upload_bytes" || k == "retry_base_ms" || k == "header_timeout_ms" ||
               k == "keepalive_timeout_ms") {
      auto v = node.value<std::int64_t>();
      if (!v || *v < 0) return fail(k.c_str(), "a non-negative integer");
      const auto n = static_cast<std::uint64_t>(*v);
      if (k == "concurrency") cfg.concurrency = static_cast<unsigned>(n == 0 ? 1 : n);
      if (k == "retries") cfg.retries = static_cast<unsigned>(n);
      if (k == "connect_timeout_ms") cfg.connect_timeout = std::chrono::milliseconds(n);
      if (k == "idle_timeout_ms") cfg.idle_timeout = std::chrono::milliseconds(n);
      if (k == "retry_base_ms") cfg.retry_base = std::chrono::milliseconds(n);
      if (k == "header_timeout_ms") cfg.header_timeout = std::chrono::milliseconds(n);
      if (k == "keepalive_timeout_ms") cfg.keepalive_timeout = std::chrono::milliseconds(n);
      if (k == "max_body_bytes") cfg.max_body_bytes = n;
      if (k == "max_upload_bytes") cfg.max_upload_bytes = n;
    } else {
      return make_error(ErrorCode::config, fmt::format("{}: unknown key '{}'", source, k));
    }
  }
  return {};
}

Result<ServerConfig> load_config(int argc, const char* const* argv) {
  ServerConfig cfg;
  CLI::App app{"otter-server: OTA updates for ESP32 fleets — REST API, web console, device registry, jobs"};
  app.set_version_flag("--version", "otter-server 0.1.0");
  std::string config_file, listen, data, artifacts, token_file, default_device, log_level, advertise;
  std::vector<std::string> cors;
  std::optional<unsigned> concurrency, retries;
  app.add_option("--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "address:port to listen on (default 127.0.0.1:8080)");
  app.add_option("--data", data, "data directory: otter.db and, by default, artifacts/ (default ./otter-data)");
  app.add_option("--artifacts", artifacts, "artifact root: the only directory whose files can be pushed");
  app.add_option("--cors-origin", cors, "origin allowed to call the API cross-origin (repeatable)");
  app.add_option("--token-file", token_file, "file holding the API token (required when not on loopback)");
  app.add_option("--default-device", default_device, "device for POST /api/upload without \"device\"");
  app.add_option("--advertise-address", advertise,
                 "address arduino-ota devices connect back to (default: the server's address towards each device)");
  app.add_option("--concurrency", concurrency, "simultaneous device transfers (default 64)");
  app.add_option("--retries", retries, "retries per device after the first attempt (default 3)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (default info)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return make_error(ErrorCode::ok, app.help());
  } catch (const CLI::CallForVersion&) {
    return make_error(ErrorCode::ok, "otter-server 0.1.0\n");
  } catch (const CLI::ParseError& e) {
    return make_error(ErrorCode::invalid_argument, e.what());
  }
  if (!config_file.empty()) {
    std::ifstream in(config_file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (auto r = apply_toml(cfg, ss.str(), config_file); !r) return tl::unexpected(r.error());
  }
  if (!listen.empty()) {
    auto hp = parse_listen(listen);
    if (!hp) return tl::unexpected(hp.error());
    cfg.listen_host = hp->first;
    cfg.listen_port = hp->second;
  }
  if (!data.empty()) cfg.data_dir = data;
  if (!artifacts.empty()) cfg.artifacts_dir = artifacts;
  if (!cors.empty()) cfg.cors_origins = cors;
  if (!token_file.empty()) cfg.token_file = token_file;
  if (!default_device.empty()) cfg.default_device = default_device;
  if (!advertise.empty()) cfg.advertise_address = advertise;
  if (concurrency) cfg.concurrency = *concurrency == 0 ? 1 : *concurrency;
  if (retries) cfg.retries = *retries;
  if (!log_level.empty()) cfg.log_level = log_level;
  if (cfg.artifacts_dir.empty()) cfg.artifacts_dir = cfg.data_dir + "/artifacts";
  if (!cfg.token_file.empty()) {
    auto tok = read_key_file(cfg.token_file);
    if (!tok) return tl::unexpected(tok.error().with_context("token file"));
    cfg.token = *tok;
  }
  if (!cfg.loopback_only() && cfg.token.empty())
    return make_error(ErrorCode::config,
                      "listening on " + cfg.listen_host +
                          " (not loopback) requires an API token: pass --token-file FILE (a secret of 16+ bytes)");
  return cfg;
}

}  // namespace otter::server
