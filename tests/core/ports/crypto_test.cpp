// The crypto ports: NIST SHA-256 and RFC 4231 HMAC-SHA256 vectors, OpenSSL and mbedTLS agreeing on random inputs,
// and a random() that is not constant. The microcontroller build (tests/mcu, OTTER_TEST_CRYPTO_MBEDTLS) has no
// OpenSSL: there every test runs on the mbedTLS port alone, except the OpenSSL-vs-mbedTLS comparison.
#include <gtest/gtest.h>
#include <mbedtls/md.h>

#include <random>
#include <string>
#include <vector>

#include "core_test_util.hpp"
#include "otter/ports/mbedtls_crypto.hpp"
#if !defined(OTTER_TEST_CRYPTO_MBEDTLS)
#include "otter/ports/openssl_crypto.hpp"
#endif

namespace otter::test {
namespace {

std::string sha_hex(core::CryptoPort& c, const Bytes& msg) {
  core::Sha256& h = c.sha256();
  h.reset();
  h.update(msg.data(), msg.size());
  std::uint8_t out[32];
  h.finish(out);
  return hex(out, 32);
}

std::string hmac_hex(core::CryptoPort& c, const Bytes& key, const std::vector<Bytes>& parts) {
  std::vector<core::ByteView> views;
  for (const Bytes& p : parts) views.push_back(view(p));
  std::uint8_t out[32];
  EXPECT_TRUE(c.hmac_sha256(view(key), views.data(), views.size(), out));
  return hex(out, 32);
}

class CryptoPorts : public ::testing::Test {
 protected:
#if defined(OTTER_TEST_CRYPTO_MBEDTLS)
  ports::MbedTlsCrypto mbed;
  std::vector<core::CryptoPort*> all = {&mbed};
#else
  ports::OpenSslCrypto ossl;
  ports::MbedTlsCrypto mbed;
  std::vector<core::CryptoPort*> all = {&ossl, &mbed};
#endif
};

TEST_F(CryptoPorts, NistSha256Vectors) {
  const std::vector<std::pair<Bytes, std::string>> vectors = {
      {Bytes{}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {bytes_of(std::string("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {bytes_of(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {Bytes(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (core::CryptoPort* c : all) {
    for (const auto& [msg, want] : vectors) EXPECT_EQ(sha_hex(*c, msg), want) << msg.size();
  }
  // One million 'a' fed in uneven pieces.
  for (core::CryptoPort* c : all) {
    core::Sha256& h = c->sha256();
    h.reset();
    const Bytes a(1000, 'a');
    std::size_t left = 1000000, step = 1;
    while (left > 0) {
      const std::size_t n = std::min({step, left, a.size()});
      h.update(a.data(), n);
      left -= n;
      step = step * 3 % 997 + 1;
    }
    std::uint8_t out[32];
    h.finish(out);
    EXPECT_EQ(hex(out, 32), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  }
}

TEST_F(CryptoPorts, Rfc4231HmacSha256Vectors) {
  Bytes key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(static_cast<std::uint8_t>(i));
  struct Case {
    int number;
    Bytes key;
    Bytes data;
    std::string mac;
  };
  const std::vector<Case> cases = {
      {1, Bytes(20, 0x0b), bytes_of(std::string("Hi There")),
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {2, bytes_of(std::string("Jefe")), bytes_of(std::string("what do ya want for nothing?")),
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {3, Bytes(20, 0xaa), Bytes(50, 0xdd), "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {4, key4, Bytes(50, 0xcd), "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {6, Bytes(131, 0xaa), bytes_of(std::string("Test Using Larger Than Block-Size Key - Hash Key First")),
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {7, Bytes(131, 0xaa),
       bytes_of(std::string("This is a test using a larger than block-size key and a larger than block-size data. "
                            "The key needs to be hashed before being used by the HMAC algorithm.")),
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (core::CryptoPort* c : all) {
    for (const Case& tc : cases) {
      SCOPED_TRACE(testing::Message() << "RFC 4231 test case " << tc.number);
      EXPECT_EQ(hmac_hex(*c, tc.key, {tc.data}), tc.mac);
      // The same message split in three parts (one empty).
      const std::size_t cut = tc.data.size() / 3;
      EXPECT_EQ(hmac_hex(*c, tc.key,
                         {Bytes(tc.data.begin(), tc.data.begin() + static_cast<long>(cut)), Bytes{},
                          Bytes(tc.data.begin() + static_cast<long>(cut), tc.data.end())}),
                tc.mac);
    }
  }
}

#if !defined(OTTER_TEST_CRYPTO_MBEDTLS)
TEST_F(CryptoPorts, OpenSslAndMbedTlsAgreeOnRandomInputs) {
  std::mt19937_64 rng(4231);
  for (int i = 0; i < 1000; ++i) {
    const Bytes key = random_bytes(rng, rng() % 200);  // includes empty keys and keys longer than a block
    std::vector<Bytes> parts(rng() % 6);
    Bytes whole;
    for (Bytes& p : parts) {
      p = random_bytes(rng, rng() % (i % 10 == 0 ? 5000 : 150));
      whole.insert(whole.end(), p.begin(), p.end());
    }
    const std::string a = hmac_hex(ossl, key, parts);
    ASSERT_EQ(a, hmac_hex(mbed, key, parts)) << "case " << i;
    ASSERT_EQ(a, hmac_hex(ossl, key, {whole})) << "case " << i;

    // Streaming SHA-256 over the same parts.
    std::string sha[2];
    for (int k = 0; k < 2; ++k) {
      core::Sha256& h = all[k]->sha256();
      h.reset();
      for (const Bytes& p : parts) h.update(p.data(), p.size());
      std::uint8_t out[32];
      h.finish(out);
      sha[k] = hex(out, 32);
    }
    ASSERT_EQ(sha[0], sha[1]) << "case " << i;
    ASSERT_EQ(sha[0], hex(sha256_of(whole))) << "case " << i;
  }
}
#endif

TEST_F(CryptoPorts, MbedTlsPortMatchesOneShotMbedTlsOnRandomInputs) {
  // The port's multi-part HMAC and streaming SHA-256 against mbedTLS's one-shot functions over the concatenation:
  // the only reference the microcontroller build has, and a check of the port's part handling everywhere.
  const mbedtls_md_info_t* md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  ASSERT_NE(md, nullptr);
  static const unsigned char kNothing = 0;
  auto ptr = [](const Bytes& b) { return b.empty() ? &kNothing : b.data(); };
  std::mt19937_64 rng(4231);
  for (int i = 0; i < 1000; ++i) {
    const Bytes key = random_bytes(rng, rng() % 200);
    std::vector<Bytes> parts(rng() % 6);
    Bytes whole;
    for (Bytes& p : parts) {
      p = random_bytes(rng, rng() % (i % 10 == 0 ? 5000 : 150));
      whole.insert(whole.end(), p.begin(), p.end());
    }
    std::uint8_t want[32];
    ASSERT_EQ(mbedtls_md_hmac(md, ptr(key), key.size(), ptr(whole), whole.size(), want), 0);
    ASSERT_EQ(hmac_hex(mbed, key, parts), hex(want, 32)) << "case " << i;

    core::Sha256& h = mbed.sha256();
    h.reset();
    for (const Bytes& p : parts) h.update(p.data(), p.size());
    std::uint8_t got[32];
    h.finish(got);
    ASSERT_EQ(mbedtls_md(md, ptr(whole), whole.size(), want), 0);
    ASSERT_EQ(hex(got, 32), hex(want, 32)) << "case " << i;
  }
}

TEST_F(CryptoPorts, RandomIsFreshEachCall) {
  for (core::CryptoPort* c : all) {
    std::uint8_t a[32], b[32], z[32] = {};
    ASSERT_TRUE(c->random(a, sizeof a));
    ASSERT_TRUE(c->random(b, sizeof b));
    EXPECT_NE(hex(a, 32), hex(b, 32));
    EXPECT_NE(hex(a, 32), hex(z, 32));
    EXPECT_NE(hex(b, 32), hex(z, 32));
  }
  // Across instances too (a DRBG seeded identically in two objects would repeat).
  ports::MbedTlsCrypto other;
  std::uint8_t a[32], b[32];
  ASSERT_TRUE(mbed.random(a, 32));
  ASSERT_TRUE(other.random(b, 32));
  EXPECT_NE(hex(a, 32), hex(b, 32));
}

TEST_F(CryptoPorts, LargeRandomRequests) {
  // Larger than mbedTLS's per-call DRBG limit (1024 bytes): the port splits it.
  for (core::CryptoPort* c : all) {
    Bytes buf(5000, 0);
    ASSERT_TRUE(c->random(buf.data(), buf.size()));
    int zeros = 0;
    for (std::uint8_t x : buf) zeros += x == 0;
    EXPECT_LT(zeros, 100);
    EXPECT_NE(Bytes(buf.begin(), buf.begin() + 1024), Bytes(buf.begin() + 1024, buf.begin() + 2048));
  }
}

}  // namespace
}  // namespace otter::test
