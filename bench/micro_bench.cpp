// otter-bench-micro — Google Benchmark micro-benchmarks of the core's hot paths.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "otter/core/codec.hpp"
#include "otter/core/name.hpp"
#include "otter/ports/mbedtls_crypto.hpp"
#include "otter/ports/openssl_crypto.hpp"

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n) {
  std::mt19937_64 rng(42);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

template <class Crypto>
void BM_Sha256(benchmark::State& state) {
  Crypto crypto;
  const auto data = random_bytes(static_cast<std::size_t>(state.range(0)));
  std::uint8_t out[32];
  for (auto _ : state) {
    crypto.sha256().reset();
    crypto.sha256().update(data.data(), data.size());
    crypto.sha256().finish(out);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK_TEMPLATE(BM_Sha256, otter::ports::OpenSslCrypto)->Arg(16384);
BENCHMARK_TEMPLATE(BM_Sha256, otter::ports::MbedTlsCrypto)->Arg(16384);

template <class Crypto>
void BM_RequestMac(benchmark::State& state) {
  Crypto crypto;
  const auto hello = random_bytes(70);
  const auto req = random_bytes(90);
  const char key[] = "0123456789abcdef0123";
  std::uint8_t out[32];
  for (auto _ : state) {
    benchmark::DoNotOptimize(otter::core::request_mac(crypto, otter::core::ByteView(key, sizeof key - 1),
                                                      {hello.data(), hello.size()}, {req.data(), req.size()}, out));
  }
}
BENCHMARK_TEMPLATE(BM_RequestMac, otter::ports::OpenSslCrypto);
BENCHMARK_TEMPLATE(BM_RequestMac, otter::ports::MbedTlsCrypto);

void BM_DecodePush(benchmark::State& state) {
  otter::core::PushRequest m;
  const char name[] = "firmware/app-v2.bin";
  m.name = otter::core::ByteView(name, sizeof name - 1);
  m.size = 1 << 20;
  std::uint8_t frame[512];
  const std::size_t n = otter::core::encode_push(m, frame, sizeof frame);
  for (auto _ : state) {
    auto r = otter::core::decode_push({frame + otter::core::kFrameHeaderSize, n - otter::core::kFrameHeaderSize});
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_DecodePush);

void BM_ValidateName(benchmark::State& state) {
  const char name[] = "lib/otter/protocol/receiver.py";
  for (auto _ : state) {
    auto r = otter::core::validate_name(otter::core::ByteView(name, sizeof name - 1));
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ValidateName);

}  // namespace

BENCHMARK_MAIN();
