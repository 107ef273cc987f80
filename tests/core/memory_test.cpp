// The device core's memory budget: one Receiver per connection must fit small boards.
#include <gtest/gtest.h>

#include <cstdio>

#include "otter/core/pusher.hpp"
#include "otter/core/receiver.hpp"

namespace otter::test {
namespace {

TEST(Memory, ReceiverFitsEightKibibytes) {
  std::printf("sizeof(Receiver) = %zu bytes, sizeof(Pusher) = %zu bytes\n", sizeof(core::Receiver),
              sizeof(core::Pusher));
  RecordProperty("sizeof_Receiver", static_cast<int>(sizeof(core::Receiver)));
  RecordProperty("sizeof_Pusher", static_cast<int>(sizeof(core::Pusher)));
  EXPECT_LE(sizeof(core::Receiver), 8u * 1024u);
  // The pusher is host-side but equally heap-free; keep it in the same league.
  EXPECT_LE(sizeof(core::Pusher), 8u * 1024u);
}

TEST(Memory, OutputBufferHoldsTheWorstCaseBurst) {
  // The largest burst the receiver queues in one step: ACK + ERROR with a full message (hash mismatch after the last
  // byte), or READY + DONE (an empty or fully held file).
  const std::size_t ack_then_error = (3 + core::kAckPayload) + (3 + core::kErrorFixed + core::kMaxErrorMessage);
  const std::size_t ready_then_done = (3 + core::kReadyPayload) + (3 + core::kDonePayload);
  const std::size_t ready_then_error = (3 + core::kReadyPayload) + (3 + core::kErrorFixed + core::kMaxErrorMessage);
  EXPECT_LE(ack_then_error, core::Receiver::kOutputBufferSize);
  EXPECT_LE(ready_then_done, core::Receiver::kOutputBufferSize);
  EXPECT_LE(ready_then_error, core::Receiver::kOutputBufferSize);
  EXPECT_LE(3 + core::kHelloFixed + core::kMaxIdLen, core::Receiver::kOutputBufferSize);
}

}  // namespace
}  // namespace otter::test
