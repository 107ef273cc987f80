#include "otter/agent/options.hpp"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <boost/asio/ip/host_name.hpp>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

namespace otter::agent {

Result<std::uint64_t> parse_size(std::string_view text) {
  const std::string shown(text);
  std::string_view t = text;
  std::uint64_t value = 0;
  const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec != std::errc() || p == t.data()) {
    return make_error(ErrorCode::invalid_argument, fmt::format("'{}' is not a size (e.g. 4096, 64K, 1M, 2G)", shown));
  }
  t.remove_prefix(static_cast<std::size_t>(p - t.data()));
  std::uint64_t mult = 1;
  if (!t.empty()) {
    switch (std::toupper(static_cast<unsigned char>(t.front()))) {
      case 'K':
        mult = 1ull << 10;
        break;
      case 'M':
        mult = 1ull << 20;
        break;
      case 'G':
        mult = 1ull << 30;
        break;
      case 'T':
        mult = 1ull << 40;
        break;
      case 'B':
        mult = 1;
        break;
      default:
        return make_error(ErrorCode::invalid_argument,
                          fmt::format("'{}': unknown size suffix (use K, M, G or T)", shown));
    }
    const bool was_b = std::toupper(static_cast<unsigned char>(t.front())) == 'B';
    t.remove_prefix(1);
    if (!was_b) {
      if (!t.empty() && (t.front() == 'i' || t.front() == 'I')) t.remove_prefix(1);
      if (!t.empty() && (t.front() == 'b' || t.front() == 'B')) t.remove_prefix(1);
    }
    if (!t.empty()) {
      return make_error(ErrorCode::invalid_argument,
                        fmt::format("'{}': unknown size suffix (use K, M, G or T)", shown));
    }
  }
  if (value > std::numeric_limits<std::uint64_t>::max() / mult) {
    return make_error(ErrorCode::invalid_argument, fmt::format("'{}' is too large", shown));
  }
  return value * mult;
}

Result<std::pair<std::string, std::uint16_t>> parse_endpoint(std::string_view text) {
  const std::string shown(text);
  auto bad = [&] {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("'{}' is not ADDR:PORT (e.g. 0.0.0.0:12345, 127.0.0.1:0, [::1]:12345)", shown));
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // a bare IPv6 address needs brackets
  }
  unsigned port = 0;
  const auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) return bad();
  return std::make_pair(std::string(host), static_cast<std::uint16_t>(port));
}

Result<void> validate_device_id(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("device id '{}' must be 1 to 64 characters (got {})", id, id.size()));
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7E) {
      return make_error(ErrorCode::invalid_argument,
                        fmt::format("device id '{}' must be printable ASCII without spaces", id));
    }
  }
  return {};
}

Result<std::vector<DeviceSpec>> device_specs(const Options& o) {
  std::vector<DeviceSpec> specs;
  if (o.devices == 0) {
    auto v = validate_device_id(o.name);
    if (!v) return tl::unexpected(v.error());
    specs.push_back({o.name, o.root, o.listen_port});
    return specs;
  }
  const std::uint32_t base = o.port_base.value_or(o.listen_port);
  if (base != 0 && base + o.devices - 1 > 65535) {
    return make_error(ErrorCode::invalid_argument,
                      fmt::format("--devices {} from port {} runs past port 65535", o.devices, base));
  }
  const int width = o.devices > 9999 ? static_cast<int>(std::to_string(o.devices).size()) : 4;
  specs.reserve(o.devices);
  for (std::size_t i = 1; i <= o.devices; ++i) {
    const std::string num = fmt::format("{:0{}}", i, width);
    DeviceSpec s;
    s.id = o.name + "-" + num;
    s.root = o.root + "/dev-" + num;
    s.port = base == 0 ? 0 : static_cast<std::uint16_t>(base + i - 1);
    auto v = validate_device_id(s.id);
    if (!v) return tl::unexpected(v.error());
    specs.push_back(std::move(s));
  }
  return specs;
}

ParseResult parse_command_line(int argc, const char* const* argv) {
  Options o;
  CLI::App app{
      "otter-agent: the otter device agent. Receives pushes (protocol v1, docs/protocol.md) into a directory; "
      "with --devices N it simulates N independent devices in one process.",
      "otter-agent"};
  app.set_version_flag("--version", "otter-agent 0.1.0");
  std::string listen = "0.0.0.0:12345";
  std::string max_size = "0";
  std::string rate = "0";
  std::string window = "8M";
  double idle_timeout = 30;
  std::size_t devices = 0;
  int port_base = -1;
  app.add_option("--listen", listen, "ADDR:PORT to listen on (port 0 = ephemeral; IPv6 as [addr]:port)")
      ->capture_default_str();
  app.add_option("--root", o.root, "directory that receives the files (created if missing)")->required();
  app.add_option("--key-file", o.key_file, "file holding the pre-shared key on one line (>= 16 bytes; --mode otter)");
  app.add_option("--mode", o.mode,
                 "otter (default), or simulate a stock device: arduino-ota (ArduinoOTA, UDP 3232 + connect-back), "
                 "webrepl (MicroPython WebREPL, 8266) or legacy (the original receiver, 12345)")
      ->capture_default_str()
      ->check(CLI::IsMember({"otter", "arduino-ota", "webrepl", "legacy"}));
  app.add_option("--password-file", o.password_file,
                 "file holding the simulated device's password on one line (arduino-ota: none if absent; webrepl: "
                 "required, 4..9 characters)");
  app.add_option("--ota-auth", o.ota_auth,
                 "--mode arduino-ota with a password: sha256 (arduino-esp32 >= 3.3.1, PBKDF2), md5 (<= 3.3.0) or "
                 "sha256-md5hash (>= 3.3.1 holding an MD5 password hash)")
      ->capture_default_str()
      ->check(CLI::IsMember({"sha256", "md5", "sha256-md5hash"}));
  app.add_option("--name", o.name, "device id, 1..64 printable ASCII (default: the host name)");
  app.add_option("--max-size", max_size, "largest accepted artifact, bytes or K/M/G (0 = free space only)")
      ->capture_default_str();
  app.add_option("--rate", rate, "per-connection receive rate limit, bytes/s or K/M/G (0 = unlimited)")
      ->capture_default_str();
  app.add_option("--devices", devices, "simulate N devices: roots ROOT/dev-0001.., ids NAME-0001..")
      ->check(CLI::Range(std::size_t{1}, std::size_t{65535}));
  app.add_option("--port-base", port_base, "first port of the simulated devices (0 = ephemeral each)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--idle-timeout", idle_timeout, "seconds a silent peer is tolerated")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--window", window, "flow-control window, bytes or K/M/G (>= 1024)")->capture_default_str();
  app.add_option("--max-sessions", o.max_sessions, "concurrent connections per device; more get ERROR BUSY")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  app.add_option("--threads", o.threads,
                 "event-loop threads the devices are spread over (0 = 1 for one device, min(devices, 8) for many)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{256}));
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_flag("--quiet,-q", o.quiet, "log warnings and errors only");
  app.add_option("--on-reboot", o.on_reboot,
                 "command run via /bin/sh -c after a committed push with the reboot flag "
                 "($1 = device id, $2 = name, $3 = file path)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return {std::nullopt, rc == 0 ? 0 : 2};
  }

  auto usage = [](const std::string& msg) {
    std::fprintf(stderr, "otter-agent: %s\nRun with --help for more information.\n", msg.c_str());
    return ParseResult{std::nullopt, 2};
  };
  auto ep = parse_endpoint(listen);
  if (!ep) return usage("--listen: " + ep.error().message);
  o.listen_host = ep->first;
  o.listen_port = ep->second;
  if (app.count("--listen") == 0) {  // the stock device's port
    if (o.mode == "arduino-ota") o.listen_port = 3232;
    if (o.mode == "webrepl") o.listen_port = 8266;
  }
  auto ms = parse_size(max_size);
  if (!ms) return usage("--max-size: " + ms.error().message);
  o.max_size = *ms;
  auto r = parse_size(rate);
  if (!r) return usage("--rate: " + r.error().message);
  o.rate = *r;
  auto w = parse_size(window);
  if (!w) return usage("--window: " + w.error().message);
  if (*w < 1024 || *w > 0xFFFFFFFFull) return usage("--window must be between 1024 bytes and 4G-1");
  o.window = static_cast<std::uint32_t>(*w);
  o.idle_timeout_ms = static_cast<std::uint32_t>(std::lround(idle_timeout * 1000.0));
  o.devices = devices;
  if (port_base >= 0) {
    if (devices == 0) return usage("--port-base needs --devices");
    o.port_base = static_cast<std::uint16_t>(port_base);
  }
  if (o.root.empty()) return usage("--root must not be empty");
  if (o.mode == "otter" && o.key_file.empty()) return usage("--key-file is required (the otter protocol's key)");
  if (o.mode != "otter" && devices != 0)
    return usage("--devices simulates otter devices only (not --mode " + o.mode + ")");
  if (o.mode == "webrepl" && o.password_file.empty()) return usage("--mode webrepl needs --password-file");
  if (o.name.empty()) {
    o.name = boost::asio::ip::host_name();
    if (o.name.size() > 59) o.name.resize(59);  // leaves room for "-NNNN"
    if (o.name.empty()) o.name = "otter-agent";
  }
  auto specs = device_specs(o);
  if (!specs) return usage(specs.error().message);
  return {std::move(o), 0};
}

}  // namespace otter::agent
