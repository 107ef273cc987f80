// otter host networking helpers (see net.hpp).
#include "net.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "otter/common/push_client.hpp"

namespace otter::net {

std::string seconds_text(std::chrono::milliseconds d) {
  return fmt::format("{:g} s", std::chrono::duration<double>(d).count());
}

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

/// Resolves and connects; returns the failed step ("resolve X" / "connect to X") with its error.
asio::awaitable<std::pair<error_code, std::string>> resolve_and_connect(tcp::resolver& resolver, tcp::socket& sock,
                                                                        const std::string& host, std::uint16_t port) {
  auto [rec, endpoints] =
      co_await resolver.async_resolve(host, std::to_string(port), tcp::resolver::numeric_service, kUse);
  if (rec) co_return std::pair{rec, fmt::format("resolve {}", host)};
  auto [cec, ep] = co_await asio::async_connect(sock, endpoints, kUse);
  if (cec) co_return std::pair{cec, fmt::format("connect to {}", format_endpoint(host, port))};
  spdlog::debug("connected to {}:{}", ep.address().to_string(), ep.port());
  co_return std::pair{error_code{}, std::string{}};
}

/// On expiry, aborts the resolver and the connect (the resolver supports no per-operation cancellation), then waits
/// to be cancelled itself, so that resolve_and_connect always finishes the race.
asio::awaitable<void> connect_watchdog(asio::steady_timer& timer, tcp::resolver& resolver, tcp::socket& sock,
                                       bool& expired) {
  auto [ec] = co_await timer.async_wait(kUse);
  if (ec) co_return;
  expired = true;
  resolver.cancel();
  error_code ignored;
  sock.close(ignored);
  timer.expires_at(asio::steady_timer::time_point::max());
  co_await timer.async_wait(kUse);
}

}  // namespace

asio::awaitable<Result<void>> connect_to(tcp::socket& sock, const std::string& host, std::uint16_t port,
                                         std::chrono::milliseconds timeout) {
  const auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  bool expired = false;
  auto race =
      co_await (resolve_and_connect(resolver, sock, host, port) || connect_watchdog(timer, resolver, sock, expired));
  if (expired) {
    co_return make_error(ErrorCode::connect_failed, fmt::format("connect to {}: timed out after {}",
                                                                format_endpoint(host, port), seconds_text(timeout)));
  }
  if (race.index() != 0) co_return make_error(ErrorCode::canceled, "canceled while connecting");
  const auto& [ec, step] = std::get<0>(race);
  if (ec) co_return make_error(ErrorCode::connect_failed, fmt::format("{}: {}", step, ec.message()));

  error_code ignored;
  sock.set_option(tcp::no_delay(true), ignored);  // every write is a whole batch: Nagle would only add latency
  co_return Result<void>{};
}

asio::awaitable<bool> idle_expired(const std::chrono::steady_clock::time_point& last_activity,
                                   std::chrono::milliseconds idle) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    timer.expires_at(last_activity + idle);
    auto [ec] = co_await timer.async_wait(kUse);
    if (ec) co_return false;
    if (std::chrono::steady_clock::now() >= last_activity + idle) co_return true;
  }
}

Error exception_error(const std::exception& e) {
  if (const auto* se = dynamic_cast<const boost::system::system_error*>(&e);
      se != nullptr && se->code() == asio::error::operation_aborted) {
    return Error(ErrorCode::canceled, "transfer canceled");
  }
  return Error(ErrorCode::internal, fmt::format("unexpected exception: {}", e.what()));
}

}  // namespace otter::net
