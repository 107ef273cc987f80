// otter — the adapters' shared parts: protocol and payload names, default ports, dispatch.
#include <fmt/format.h>
#include <boost/asio/awaitable.hpp>

#include "otter/common/adapters_asio.hpp"

namespace otter::adapters {

Result<Protocol> parse_protocol(std::string_view name) {
  for (auto p : {Protocol::otter, Protocol::arduino_ota, Protocol::webrepl, Protocol::legacy})
    if (name == protocol_name(p)) return p;
  return make_error(ErrorCode::invalid_argument,
                    fmt::format("unknown protocol '{}' (otter, arduino-ota, webrepl or legacy)", name));
}

const char* protocol_name(Protocol protocol) noexcept {
  switch (protocol) {
    case Protocol::otter:
      return "otter";
    case Protocol::arduino_ota:
      return "arduino-ota";
    case Protocol::webrepl:
      return "webrepl";
    case Protocol::legacy:
      return "legacy";
  }
  return "otter";
}

std::uint16_t default_port(Protocol protocol) noexcept {
  switch (protocol) {
    case Protocol::arduino_ota:
      return 3232;
    case Protocol::webrepl:
      return 8266;
    case Protocol::otter:
    case Protocol::legacy:
      break;
  }
  return 12345;
}

Result<Payload> parse_payload(std::string_view name) {
  for (auto p : {Payload::file, Payload::firmware, Payload::filesystem})
    if (name == payload_name(p)) return p;
  return make_error(ErrorCode::invalid_argument,
                    fmt::format("unknown kind '{}' (file, firmware or filesystem)", name));
}

const char* payload_name(Payload payload) noexcept {
  switch (payload) {
    case Payload::firmware:
      return "firmware";
    case Payload::filesystem:
      return "filesystem";
    case Payload::file:
      break;
  }
  return "file";
}

boost::asio::awaitable<Result<Outcome>> async_push(Protocol protocol, Request request, Progress progress) {
  if (request.port == 0) request.port = default_port(protocol);
  switch (protocol) {
    case Protocol::arduino_ota:
      co_return co_await push_arduino_ota(std::move(request), std::move(progress));
    case Protocol::webrepl:
      co_return co_await push_webrepl(std::move(request), std::move(progress));
    case Protocol::legacy:
      co_return co_await push_legacy(std::move(request), std::move(progress));
    case Protocol::otter:
      break;
  }
  co_return make_error(ErrorCode::invalid_argument,
                       "the otter protocol is pushed by the push client, not an adapter");
}

}  // namespace otter::adapters
