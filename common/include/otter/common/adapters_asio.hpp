// otter — the coroutine form of the adapters (adapters.hpp), for otter-server's jobs. Each call runs on the awaiting
// coroutine's executor, calls `progress` there, and ends with CANCELED when the awaiting coroutine's cancellation
// slot emits (terminal).
#pragma once

#include <boost/asio/awaitable.hpp>

#include "otter/common/adapters.hpp"

namespace otter::adapters {

boost::asio::awaitable<Result<Outcome>> async_push(Protocol protocol, Request request, Progress progress = {});

// One per protocol (async_push dispatches to them).
boost::asio::awaitable<Result<Outcome>> push_arduino_ota(Request request, Progress progress);
boost::asio::awaitable<Result<Outcome>> push_webrepl(Request request, Progress progress);
boost::asio::awaitable<Result<Outcome>> push_legacy(Request request, Progress progress);

}  // namespace otter::adapters
