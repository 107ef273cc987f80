// otter — a minimal device image for the microcontroller build: the core's Receiver with the mbedTLS crypto port and
// a storage port that only counts (a device writes to flash), running one authenticated push of 100 KiB over an
// in-memory loop. The peer at the other end of the loop is the core's Pusher (on a device it is the host across
// TCP; scripts/mcu-size reports the image with and without it). No test framework, no exceptions, no RTTI.
//
// Prints what a device pays at run time: sizeof the per-connection objects on this 32-bit target, the stack
// high-water mark of the device-side calls (the stack is painted before each call and scanned after it), and the
// heap (malloc/calloc/free are wrapped with -Wl,--wrap). Exits 0 iff the push was committed and confirmed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>

#include "otter/core/pusher.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/mbedtls_crypto.hpp"

namespace {

using otter::ErrorCode;
using otter::core::ByteView;

constexpr std::uint64_t kContentSize = 100 * 1024;
constexpr std::uint32_t kWindow = 16 * 1024;
constexpr std::uint32_t kChunk = 1024;
constexpr char kKey[] = "mcu-device-key-0123456789";
constexpr char kDeviceId[] = "mps2-an385";
constexpr char kName[] = "fw/app.bin";

std::uint8_t content_at(std::uint64_t i) { return static_cast<std::uint8_t>((i * 131) ^ (i >> 9)); }

// --- heap accounting (-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free) ----------------------------------

struct Heap {
  static constexpr int kSlots = 16;
  void* ptr[kSlots] = {};
  std::size_t size[kSlots] = {};
  std::size_t current = 0;
  std::size_t peak = 0;
  unsigned allocations = 0;
  unsigned untracked = 0;

  void add(void* p, std::size_t n) {
    if (p == nullptr) return;
    ++allocations;
    current += n;
    if (current > peak) peak = current;
    for (int i = 0; i < kSlots; ++i) {
      if (ptr[i] == nullptr) {
        ptr[i] = p;
        size[i] = n;
        return;
      }
    }
    ++untracked;
  }
  void remove(void* p) {
    for (int i = 0; i < kSlots; ++i) {
      if (p != nullptr && ptr[i] == p) {
        current -= size[i];
        ptr[i] = nullptr;
        return;
      }
    }
  }
} g_heap;

}  // namespace

extern "C" {
void* __real_malloc(std::size_t n);
void* __real_calloc(std::size_t n, std::size_t size);
void* __real_realloc(void* p, std::size_t n);
void __real_free(void* p);

// picolibc's calloc and realloc call malloc and free themselves: only the outermost call counts.
static bool g_in_heap = false;

void* __wrap_malloc(std::size_t n) {
  const bool outer = !g_in_heap;
  g_in_heap = true;
  void* p = __real_malloc(n);
  g_in_heap = !outer;
  if (outer) g_heap.add(p, n);
  return p;
}
void* __wrap_calloc(std::size_t n, std::size_t size) {
  const bool outer = !g_in_heap;
  g_in_heap = true;
  void* p = __real_calloc(n, size);
  g_in_heap = !outer;
  if (outer) g_heap.add(p, n * size);
  return p;
}
void* __wrap_realloc(void* old, std::size_t n) {
  const bool outer = !g_in_heap;
  g_in_heap = true;
  void* p = __real_realloc(old, n);
  g_in_heap = !outer;
  if (outer && p != nullptr) {
    g_heap.remove(old);
    g_heap.add(p, n);
  }
  return p;
}
void __wrap_free(void* p) {
  if (!g_in_heap) g_heap.remove(p);
  __real_free(p);
}

// The stack region of picolibcpp.ld: [__heap_end, __stack).
extern char __heap_end[];
extern char __stack[];
}

namespace {

// --- stack high-water marks ---------------------------------------------------------------------------------------

constexpr std::uint32_t kPaint = 0x5a17c0deu;

__attribute__((always_inline)) inline std::uintptr_t stack_pointer() {
  std::uintptr_t sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  return sp;
}

// Runs f() and returns how many bytes of stack it used below the caller's stack pointer: the free part of the stack
// is painted first and afterwards scanned from the bottom for the first word that changed.
template <class F>
std::size_t stack_used_by(F&& f) {
  const std::uintptr_t sp = stack_pointer();
  auto* bottom = reinterpret_cast<volatile std::uint32_t*>(__heap_end);
  auto* const limit = reinterpret_cast<volatile std::uint32_t*>(sp - 8);  // below sp: free (AAPCS has no red zone)
  for (volatile std::uint32_t* w = bottom; w < limit; ++w) *w = kPaint;
  f();
  volatile std::uint32_t* w = bottom;
  while (w < limit && *w == kPaint) ++w;
  return w == bottom ? ~std::size_t{0} : sp - reinterpret_cast<std::uintptr_t>(w);  // ~0: overflowed the stack
}

// The stack high-water mark of each kind of call, and of all of them.
struct StackUse {
  static constexpr int kKinds = 8;
  const char* what[kKinds] = {};
  std::size_t bytes[kKinds] = {};
  int kinds = 0;

  template <class F>
  void measure(const char* label, F&& f) {
    const std::size_t used = stack_used_by(static_cast<F&&>(f));
    int i = 0;
    while (i < kinds && std::strcmp(what[i], label) != 0) ++i;
    if (i == kinds) {
      if (kinds == kKinds) return;
      what[kinds++] = label;
    }
    if (used > bytes[i]) bytes[i] = used;
  }
  [[nodiscard]] std::size_t max() const {
    std::size_t m = 0;
    for (int i = 0; i < kinds; ++i) m = bytes[i] > m ? bytes[i] : m;
    return m;
  }
};

// --- a storage port that keeps no bytes: a device's would write them to flash --------------------------------------

class CountingStorage final : public otter::core::StoragePort {
 public:
  std::uint64_t free_space() override { return 4u * 1024u * 1024u; }
  otter::core::Result<std::uint64_t> begin(ByteView /*name*/, otter::core::Kind /*kind*/, std::uint64_t /*size*/,
                                           const std::uint8_t* /*sha256*/, otter::core::Sha256& /*hasher*/) override {
    written = 0;
    return std::uint64_t{0};
  }
  otter::core::Result<void> write(const std::uint8_t* data, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) mismatches += data[i] != content_at(written + i) ? 1u : 0u;
    written += n;
    return {};
  }
  otter::core::Result<void> commit() override {
    committed = true;
    return {};
  }
  void suspend() override {}
  void discard() override {}
  otter::core::Result<otter::core::FileStat> stat(ByteView /*name*/, otter::core::Sha256& /*hasher*/) override {
    return otter::core::FileStat{};
  }

  std::uint64_t written = 0;
  std::uint64_t mismatches = 0;
  bool committed = false;
};

// One direction of the loop: bytes sent, not yet consumed by the other side.
struct Pipe {
  std::uint8_t buf[2048] = {};
  std::size_t len = 0;
  [[nodiscard]] std::size_t room() const { return sizeof buf - len; }
  void push(const std::uint8_t* p, std::size_t n) {
    std::memcpy(buf + len, p, n);
    len += n;
  }
  void pop(std::size_t n) {
    std::memmove(buf, buf + n, len - n);
    len -= n;
  }
};

// Objects a device keeps for the connection, statically allocated (constructed in place, under measurement).
alignas(otter::ports::MbedTlsCrypto) unsigned char g_device_crypto_mem[sizeof(otter::ports::MbedTlsCrypto)];
alignas(otter::core::Receiver) unsigned char g_receiver_mem[sizeof(otter::core::Receiver)];
CountingStorage g_storage;

// The peer.
alignas(otter::ports::MbedTlsCrypto) unsigned char g_peer_crypto_mem[sizeof(otter::ports::MbedTlsCrypto)];
alignas(otter::core::Pusher) unsigned char g_pusher_mem[sizeof(otter::core::Pusher)];
Pipe g_to_device, g_to_pusher;

}  // namespace

int main() {
  using otter::core::Pusher;
  using otter::core::Receiver;
  using otter::ports::MbedTlsCrypto;

  std::printf(
      "otter-mcu-device: sizeof(Receiver) = %u, sizeof(Pusher) = %u, sizeof(MbedTlsCrypto) = %u, "
      "sizeof(MbedTlsSha256) = %u bytes\n",
      static_cast<unsigned>(sizeof(Receiver)), static_cast<unsigned>(sizeof(Pusher)),
      static_cast<unsigned>(sizeof(MbedTlsCrypto)), static_cast<unsigned>(sizeof(otter::ports::MbedTlsSha256)));

  StackUse device;  // every call a device makes: crypto set-up, Receiver calls (incl. storage and crypto under them)
  MbedTlsCrypto* crypto = nullptr;
  device.measure("MbedTlsCrypto()", [&] { crypto = new (g_device_crypto_mem) MbedTlsCrypto(); });
  const std::size_t heap_per_crypto = g_heap.current;

  otter::core::ReceiverConfig cfg;
  cfg.key = ByteView(kKey, sizeof kKey - 1);
  cfg.device_id = ByteView(kDeviceId, sizeof kDeviceId - 1);
  cfg.window = kWindow;
  Receiver* rx = nullptr;
  device.measure("Receiver()", [&] { rx = new (g_receiver_mem) Receiver(cfg, g_storage, *crypto); });

  // The peer: content hash, then a Pusher.
  auto* peer_crypto = new (g_peer_crypto_mem) MbedTlsCrypto();
  otter::core::PushParams params;
  params.key = cfg.key;
  params.name = ByteView(kName, sizeof kName - 1);
  params.size = kContentSize;
  params.chunk_size = kChunk;
  {
    otter::core::Sha256& h = peer_crypto->sha256();
    h.reset();
    std::uint8_t block[256];
    for (std::uint64_t at = 0; at < kContentSize; at += sizeof block) {
      for (std::size_t i = 0; i < sizeof block; ++i) block[i] = content_at(at + i);
      h.update(block, sizeof block);
    }
    h.finish(params.sha256);
  }
  auto* px = new (g_pusher_mem) Pusher(params, *peer_crypto);

  std::uint64_t now = 0;
  device.measure("start", [&] { rx->start(now); });
  unsigned steps = 0;
  while (!(rx->finished() && px->finished()) && steps < 100000) {
    ++steps;
    ++now;
    // Device -> peer.
    const ByteView out = rx->output();
    if (out.size != 0) {
      const std::size_t k = out.size < g_to_pusher.room() ? out.size : g_to_pusher.room();
      g_to_pusher.push(out.data, k);
      device.measure("output_consumed", [&] { rx->output_consumed(k); });
    }
    if (g_to_pusher.len != 0) {
      px->feed(g_to_pusher.buf, g_to_pusher.len, now);
      g_to_pusher.pop(g_to_pusher.len);
    }
    // Peer -> device: control frames, then DATA frames while the window and the pipe allow.
    const ByteView req = px->output();
    if (req.size != 0 && req.size <= g_to_device.room()) {
      g_to_device.push(req.data, req.size);
      px->output_consumed(req.size);
    }
    std::uint32_t len;
    while ((len = px->data_ready()) > 0 && g_to_device.room() > otter::core::kFrameHeaderSize) {
      const std::size_t room = g_to_device.room() - otter::core::kFrameHeaderSize;
      if (len > room) len = static_cast<std::uint32_t>(room);
      otter::core::encode_header(otter::core::FrameType::data, static_cast<std::uint16_t>(len),
                                 g_to_device.buf + g_to_device.len);
      g_to_device.len += otter::core::kFrameHeaderSize;
      for (std::uint32_t i = 0; i < len; ++i) g_to_device.buf[g_to_device.len++] = content_at(px->data_offset() + i);
      px->data_sent(len);
    }
    // The device reads at most 512 bytes per recv(), like a small socket buffer.
    if (g_to_device.len != 0) {
      const std::size_t n = g_to_device.len < 512 ? g_to_device.len : 512;
      std::size_t used = 0;
      device.measure("feed", [&] { used = rx->feed(g_to_device.buf, n, now); });
      g_to_device.pop(used);
    }
    device.measure("tick", [&] { rx->tick(now); });
    px->tick(now);
  }

  const bool ok = rx->result() == ErrorCode::ok && px->error() == ErrorCode::ok && g_storage.committed &&
                  g_storage.written == kContentSize && g_storage.mismatches == 0;
  // Error codes as numbers (docs/errors.md): error_name()'s table would add 1.5 KB of strings to the image.
  std::printf(
      "otter-mcu-device: push of %u bytes in %u steps: receiver result %u, pusher result %u%s%s, %u bytes "
      "written%s\n",
      static_cast<unsigned>(kContentSize), steps, static_cast<unsigned>(rx->result()),
      static_cast<unsigned>(px->error()), px->error_message()[0] != 0 ? " " : "", px->error_message(),
      static_cast<unsigned>(g_storage.written), g_storage.committed ? ", committed" : "");
  std::printf("otter-mcu-device: device stack high-water %u bytes (", static_cast<unsigned>(device.max()));
  for (int i = 0; i < device.kinds; ++i) {
    std::printf("%s%s %u", i != 0 ? ", " : "", device.what[i], static_cast<unsigned>(device.bytes[i]));
  }
  std::printf(")\n");
  std::printf(
      "otter-mcu-device: heap %u bytes per MbedTlsCrypto (mbedtls_md_setup), peak %u bytes in %u "
      "allocations for both ends%s, malloc overhead not counted\n",
      static_cast<unsigned>(heap_per_crypto), static_cast<unsigned>(g_heap.peak), g_heap.allocations,
      g_heap.untracked != 0 ? " (some untracked)" : "");
  std::printf("otter-mcu-device: stack region %u bytes\n", static_cast<unsigned>(__stack - __heap_end));

  px->~Pusher();
  peer_crypto->~MbedTlsCrypto();
  rx->~Receiver();
  crypto->~MbedTlsCrypto();
  std::printf("otter-mcu-device: %s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
