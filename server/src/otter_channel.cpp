// otter-server — the DeviceChannel: one coroutine per transfer, spawned on the server's io_context with a
// cancellation signal that the returned cancel function emits. Protocol "otter" goes through the push client
// (common/push_client_asio.hpp); "arduino-ota", "webrepl" and "legacy" through their adapters (adapters_asio.hpp).
//
// probe() is a STAT of a harmless name (kProbeName): it needs the key, proves the device knows it (the STAT_RESULT
// MAC), and the device's HELLO gives its id, capabilities, firmware state and space. Nothing is written.
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include "otter/common/adapters_asio.hpp"
#include "otter/common/hex.hpp"
#include "otter/common/push_client_asio.hpp"
#include "otter/server/config.hpp"
#include "otter/server/jobs.hpp"

namespace otter::server {
namespace {

namespace asio = boost::asio;

/// STATed by probe(): a valid name that no deployment uses; a STAT never creates it.
constexpr const char* kProbeName = "otter-probe.stat";

struct Endpoint {
  std::string host;
  std::uint16_t port = core::kDefaultPort;
  bool explicit_port = false;  ///< the address named a port (else the protocol's default applies)
};

/// "host:port", "[v6]:port" or a bare host (default port).
Result<Endpoint> parse_address(const std::string& address) {
  Endpoint ep;
  std::string port_text;
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    if (close == std::string::npos) return make_error(ErrorCode::invalid_argument, "bad address '" + address + "'");
    ep.host = address.substr(1, close - 1);
    if (close + 1 < address.size()) {
      if (address[close + 1] != ':') return make_error(ErrorCode::invalid_argument, "bad address '" + address + "'");
      port_text = address.substr(close + 2);
    }
  } else {
    const auto colon = address.rfind(':');
    if (colon != std::string::npos && address.find(':') == colon) {
      ep.host = address.substr(0, colon);
      port_text = address.substr(colon + 1);
    } else {
      ep.host = address;  // a bare name, or a bare IPv6 literal
    }
  }
  if (ep.host.empty()) return make_error(ErrorCode::invalid_argument, "no host in address '" + address + "'");
  if (!port_text.empty() || (address.size() > 0 && address.back() == ':')) {
    unsigned long port = 0;
    bool ok = !port_text.empty() && port_text.size() <= 5;
    for (const char c : port_text) {
      ok = ok && c >= '0' && c <= '9';
      if (ok) port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (!ok || port == 0 || port > 65535) {
      return make_error(ErrorCode::invalid_argument, "bad port in address '" + address + "'");
    }
    ep.port = static_cast<std::uint16_t>(port);
    ep.explicit_port = true;
  }
  return ep;
}

Error exception_to_error(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) return {ErrorCode::canceled, "transfer canceled"};
    return {ErrorCode::internal, fmt::format("unexpected exception: {}", e.what())};
  } catch (const std::exception& e) {
    return {ErrorCode::internal, fmt::format("unexpected exception: {}", e.what())};
  } catch (...) {
    return {ErrorCode::internal, "unexpected exception"};
  }
}

/// True if the error shows that an otter device answered (it sent HELLO, then an ERROR or a bad proof).
bool device_answered(ErrorCode code) {
  if (code == ErrorCode::device_auth) return true;
  return is_wire_error(code) && code != ErrorCode::timeout;
}

/// One transfer's cancellation state, shared by the coroutine's completion handler and the cancel function.
struct Op {
  asio::cancellation_signal signal;
  bool finished = false;
};

/// Runs one transfer coroutine on `io`; `done` gets its result mapped by `to_outcome`. Returns the cancel function
/// (idempotent; `done` still follows, with CANCELED).
template <class T, class Map>
std::function<void()> spawn_transfer(asio::io_context& io, asio::awaitable<Result<T>> transfer, Map to_outcome,
                                     DeviceChannel::Done done) {
  auto op = std::make_shared<Op>();
  asio::co_spawn(io, std::move(transfer),
                 asio::bind_cancellation_slot(op->signal.slot(),
                                              [op, to_outcome = std::move(to_outcome), done = std::move(done)](
                                                  const std::exception_ptr& ep, Result<T> r) {
                                                op->finished = true;
                                                if (ep) return done(tl::unexpected(exception_to_error(ep)));
                                                if (!r) return done(tl::unexpected(r.error()));
                                                done(to_outcome(*r));
                                              }));
  return [op] {
    if (!op->finished) op->signal.emit(asio::cancellation_type::terminal);
  };
}

class OtterChannel final : public DeviceChannel {
 public:
  OtterChannel(asio::io_context& io, const ServerConfig& cfg)
      : io_(io),
        connect_timeout_(cfg.connect_timeout),
        idle_timeout_(cfg.idle_timeout),
        advertise_address_(cfg.advertise_address) {}

  std::function<void()> push(Transfer t, Progress progress, Done done) override {
    if (t.protocol != "otter") return push_stock(t, std::move(progress), std::move(done));
    auto options = to_options(t);
    if (!options) {
      // Never call back from inside push(): the caller may still be setting up.
      asio::post(io_, [done = std::move(done), e = options.error()] { done(tl::unexpected(e)); });
      return [] {};
    }
    return spawn_transfer(
        io_, async_push(std::move(*options), std::move(progress)),
        [](const PushOutcome& r) {
          Outcome out;
          out.unchanged = r.unchanged;
          out.bytes_sent = r.bytes_sent;
          out.resume_offset = r.resume_offset;
          out.device_id = r.device.id;
          return out;
        },
        std::move(done));
  }

  void probe(std::string address, std::string key, std::function<void(ProbeResult)> done) override {
    auto ep = parse_address(address);
    if (!ep) {
      ProbeResult pr;
      pr.error = ep.error();
      asio::post(io_, [done = std::move(done), pr = std::move(pr)] { done(pr); });
      return;
    }
    StatOptions o;
    o.host = ep->host;
    o.port = ep->port;
    o.key = std::move(key);
    o.name = kProbeName;
    o.connect_timeout = connect_timeout_;
    o.idle_timeout = idle_timeout_;
    asio::co_spawn(io_, async_stat(std::move(o)),
                   [done = std::move(done)](const std::exception_ptr& eptr, Result<StatOutcome> r) {
                     ProbeResult pr;
                     if (eptr) {
                       pr.error = exception_to_error(eptr);
                     } else if (!r) {
                       pr.error = r.error();
                       pr.online = device_answered(r.error().code);
                     } else {
                       pr.online = true;
                       pr.device_id = r->device.id;
                       pr.caps = r->device.caps;
                       pr.fw_state = fw_state_name(r->device.fw_state);
                       pr.max_size = r->device.max_size;
                       pr.free = r->device.free;
                     }
                     done(std::move(pr));
                   });
  }

 private:
  Result<PushOptions> to_options(const Transfer& t) const {
    auto ep = parse_address(t.address);
    if (!ep) return tl::unexpected(ep.error());
    PushOptions o;
    o.host = ep->host;
    o.port = ep->port;
    o.key = t.key;
    o.name = t.name;
    if (t.kind == "file") {
      o.kind = core::Kind::file;
    } else if (t.kind == "firmware") {
      o.kind = core::Kind::firmware;
    } else {
      return make_error(ErrorCode::invalid_argument, fmt::format("unknown kind '{}'", t.kind));
    }
    o.flags = t.reboot ? core::flags::reboot : 0;
    o.path = t.local_path;
    o.size = t.size;
    if (!t.sha256_hex.empty()) {
      Sha256Digest d{};
      if (auto r = from_hex(t.sha256_hex, d); !r) return tl::unexpected(r.error().with_context("artifact sha256"));
      o.sha256 = d;
    }
    o.connect_timeout = connect_timeout_;
    o.idle_timeout = idle_timeout_;
    o.skip_unchanged = t.skip_unchanged;
    return o;
  }

  /// A stock device (arduino-ota, webrepl, legacy) through its adapter.
  std::function<void()> push_stock(const Transfer& t, Progress progress, Done done) {
    auto request = to_request(t);
    if (!request) {
      asio::post(io_, [done = std::move(done), e = request.error()] { done(tl::unexpected(e)); });
      return [] {};
    }
    auto protocol = *adapters::parse_protocol(t.protocol);
    return spawn_transfer(
        io_, adapters::async_push(protocol, std::move(*request), std::move(progress)),
        [](const adapters::Outcome& r) {
          Outcome out;
          out.bytes_sent = r.bytes_sent;
          return out;
        },
        std::move(done));
  }

  Result<adapters::Request> to_request(const Transfer& t) const {
    auto protocol = adapters::parse_protocol(t.protocol);
    if (!protocol) return tl::unexpected(protocol.error());
    auto ep = parse_address(t.address);
    if (!ep) return tl::unexpected(ep.error());
    adapters::Request r;
    r.host = ep->host;
    r.port = ep->explicit_port ? ep->port : adapters::default_port(*protocol);
    r.path = t.local_path;
    r.name = t.name;
    if (*protocol == adapters::Protocol::arduino_ota) {
      // ArduinoOTA updates images: the app partition, or with kind "filesystem" the data partition.
      r.payload = t.kind == "filesystem" ? adapters::Payload::filesystem : adapters::Payload::firmware;
      r.callback_host = advertise_address_;
    } else {
      if (t.kind != "file")
        return make_error(ErrorCode::unsupported_kind,
                          fmt::format("a {} device takes files only, not kind \"{}\"", t.protocol, t.kind));
      r.payload = adapters::Payload::file;
    }
    r.password = t.key;
    r.verify = *protocol == adapters::Protocol::webrepl;  // WebREPL has no checksum: read the file back
    r.connect_timeout = connect_timeout_;
    r.idle_timeout = idle_timeout_;
    return r;
  }

  asio::io_context& io_;
  std::chrono::milliseconds connect_timeout_;
  std::chrono::milliseconds idle_timeout_;
  std::string advertise_address_;
};

}  // namespace

std::unique_ptr<DeviceChannel> make_otter_channel(asio::io_context& io, const ServerConfig& cfg) {
  return std::make_unique<OtterChannel>(io, cfg);
}

}  // namespace otter::server
