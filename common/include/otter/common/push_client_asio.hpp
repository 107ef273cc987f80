// otter — the coroutine form of the transfer engine (see push_client.hpp), for servers running many transfers on
// one io_context. The only otter header that exposes Boost.Asio.
//
//   asio::co_spawn(io, [&]() -> asio::awaitable<void> {
//     otter::Result<otter::PushOutcome> r = co_await otter::async_push(options, progress);
//   }, asio::detached);
//
// Each call runs on its own strand of the awaiting coroutine's executor, so a multi-threaded io_context is fine;
// the progress callback is invoked on that strand. Options are taken by value (the coroutine owns them). If
// options.sha256 is absent, the file is hashed synchronously on the executor before connecting: servers should pass
// it. Cancelling the awaiting coroutine (a cancellation slot) ends the transfer with CANCELED.
#pragma once

#include <boost/asio/awaitable.hpp>

#include "otter/common/push_client.hpp"

namespace otter {

boost::asio::awaitable<Result<PushOutcome>> async_push(PushOptions options, PushProgress progress = {});
boost::asio::awaitable<Result<StatOutcome>> async_stat(StatOptions options);

}  // namespace otter
