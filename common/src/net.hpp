// otter host networking helpers shared by the push client and the adapters (internal to otter_common; Asio inside).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <string>

#include "otter/common/error.hpp"

namespace otter::net {

/// "1.5 s" (for messages).
std::string seconds_text(std::chrono::milliseconds d);

/// Resolves `host` and connects `sock` within `timeout` (resolve + connect), then sets TCP_NODELAY. CONNECT_FAILED
/// naming the failed step ("resolve HOST: …", "connect to HOST:PORT: …", "… timed out after N s"); CANCELED when the
/// awaiting coroutine is cancelled.
boost::asio::awaitable<Result<void>> connect_to(boost::asio::ip::tcp::socket& sock, const std::string& host,
                                                std::uint16_t port, std::chrono::milliseconds timeout);

}  // namespace otter::net
