// otter-server — configuration: built-in defaults < TOML file (--config) < command-line flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "otter/common/error.hpp"

namespace otter::server {

struct ServerConfig {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  std::string data_dir = "./otter-data";
  std::string artifacts_dir;              ///< default DATA/artifacts
  std::vector<std::string> cors_origins;  ///< exact origins, e.g. "http://127.0.0.1:5500"
  std::string token_file;                 ///< file holding the API token (one line)
  std::string token;                      ///< loaded from token_file (or generated when required)
  std::string default_device;             ///< for POST /api/upload without "device"
  /// arduino-ota devices connect back to the server: the address they reach it at (empty: the server's own address
  /// on the route to the device, which is wrong behind NAT or a port forward).
  std::string advertise_address;
  unsigned concurrency = 64;                  ///< simultaneous device transfers
  unsigned retries = 3;                       ///< retries per device after the first attempt
  std::chrono::milliseconds retry_base{500};  ///< first backoff; doubles, with jitter
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds idle_timeout{30'000};
  std::chrono::milliseconds header_timeout{10'000};     ///< HTTP: a request header must arrive within this
  std::chrono::milliseconds keepalive_timeout{60'000};  ///< HTTP: how long a connection may idle between requests
  std::uint64_t max_body_bytes = 1u << 20;              ///< JSON request bodies
  std::uint64_t max_upload_bytes = 4ull << 30;          ///< artifact uploads
  std::string log_level = "info";

  [[nodiscard]] std::string db_path() const { return data_dir + "/otter.db"; }
  [[nodiscard]] bool loopback_only() const;
  /// Every state-changing call needs the token (always when listening off loopback, or when a token is set).
  [[nodiscard]] bool token_required() const { return !token.empty(); }
};

/// Parses argv (CLI11) and the optional TOML file. On --help/--version returns an Error with code OK and the text
/// to print as message.
Result<ServerConfig> load_config(int argc, const char* const* argv);
/// Loads the TOML text into cfg (keys as in docs/api.md: listen, data, artifacts, cors_origins, token_file,
/// default_device, concurrency, retries, connect_timeout_ms, idle_timeout_ms, header_timeout_ms,
/// keepalive_timeout_ms, max_body_bytes, max_upload_bytes, log_level).
Result<void> apply_toml(ServerConfig& cfg, const std::string& toml_text, const std::string& source_name);
/// Parses "host:port", "[v6]:port" or ":port".
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text);

}  // namespace otter::server
