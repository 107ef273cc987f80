// otter host networking helpers shared by the push client and the adapters (internal to otter_common; Asio inside).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "otter/common/error.hpp"
#include "otter/common/unique_fd.hpp"

namespace otter::net {

/// "1.5 s" (for messages).
std::string seconds_text(std::chrono::milliseconds d);

/// Resolves `host` and connects `sock` within `timeout` (resolve + connect), then sets TCP_NODELAY. CONNECT_FAILED
/// naming the failed step ("resolve HOST: …", "connect to HOST:PORT: …", "… timed out after N s"); CANCELED when the
/// awaiting coroutine is cancelled.
boost::asio::awaitable<Result<void>> connect_to(boost::asio::ip::tcp::socket& sock, const std::string& host,
                                                std::uint16_t port, std::chrono::milliseconds timeout);

/// Runs `op` on a strand of its own on the awaiting coroutine's executor, so that its coroutines (reader, writer,
/// watchdog) never run in parallel even on a multi-threaded io_context; the awaiting coroutine's cancellation slot
/// reaches it.
template <class T>
boost::asio::awaitable<T> on_own_strand(boost::asio::awaitable<T> op) {
  const auto strand = boost::asio::make_strand(co_await boost::asio::this_coro::executor);
  co_return co_await boost::asio::co_spawn(strand, std::move(op), boost::asio::use_awaitable);
}

/// An idle watchdog: returns true once `last_activity` (updated by the caller's I/O) is `idle` old, false when the
/// awaiting coroutine is cancelled (e.g. by `||` because the work ended first). Sleeps until the deadline, no ticks.
boost::asio::awaitable<bool> idle_expired(const std::chrono::steady_clock::time_point& last_activity,
                                          std::chrono::milliseconds idle);

/// An exception that escaped a transfer's coroutines: CANCELED for operation_aborted, INTERNAL otherwise.
Error exception_error(const std::exception& e);

}  // namespace otter::net
