#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "otter/common/file_hash.hpp"
#include "otter/common/hex.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter {
namespace {

TEST(Hex, Encodes) {
  const std::vector<std::uint8_t> b = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  EXPECT_EQ(to_hex(b), "00017f80abff");
  EXPECT_EQ(to_hex(std::span<const std::uint8_t>()), "");
}

TEST(Hex, RoundTripsEveryByte) {
  std::vector<std::uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(i);
  EXPECT_EQ(from_hex(to_hex(all)).value(), all);
}

TEST(Hex, DecodesBothCases) {
  EXPECT_EQ(from_hex("ABcdEf").value(), (std::vector<std::uint8_t>{0xab, 0xcd, 0xef}));
  EXPECT_TRUE(from_hex("").value().empty());
}

TEST(Hex, RefusesOddLength) {
  const auto r = from_hex("abc");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("odd"), std::string::npos);
}

TEST(Hex, RefusesNonDigitsAndSaysWhere) {
  for (const char* bad : {"0g", "g0", " 0", "0x12", "12-4", "zz"}) {
    const auto r = from_hex(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
    EXPECT_NE(r.error().message.find("position"), std::string::npos) << r.error().message;
  }
  const auto r = from_hex("00\x01z");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("0x01"), std::string::npos) << r.error().message;
}

TEST(Hex, FixedSizeDecode) {
  std::array<std::uint8_t, 4> out{};
  ASSERT_TRUE(from_hex("deadBEEF", out));
  EXPECT_EQ(out, (std::array<std::uint8_t, 4>{0xde, 0xad, 0xbe, 0xef}));
  EXPECT_FALSE(from_hex("deadbe", out));
  EXPECT_FALSE(from_hex("deadbeef00", out));
  EXPECT_FALSE(from_hex("deadbeeg", out));
}

TEST(FileHash, KnownVectors) {
  EXPECT_EQ(to_hex(sha256_bytes({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string hello = "hello";
  EXPECT_EQ(to_hex(sha256_bytes({reinterpret_cast<const std::uint8_t*>(hello.data()), hello.size()})),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

TEST(FileHash, MatchesReferenceAcrossBlockBoundaries) {
  test::TempDir dir;
  for (const std::uint64_t n :
       {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{kHashBlockSize - 1}, std::uint64_t{kHashBlockSize},
        std::uint64_t{kHashBlockSize + 1}, std::uint64_t{3 * kHashBlockSize + 12345}}) {
    const auto path = dir / ("f" + std::to_string(n));
    test::write_random_file(path, n, n + 7);
    std::uint64_t last_done = 0;
    int calls = 0;
    const auto d = sha256_file(path.string(), [&](std::uint64_t done, std::uint64_t total) {
      EXPECT_EQ(total, n);
      EXPECT_GT(done, last_done);
      last_done = done;
      ++calls;
    });
    ASSERT_TRUE(d) << d.error().to_string();
    EXPECT_EQ(to_hex(*d), test::sha256_file_hex(path)) << n;
    EXPECT_EQ(last_done, n);
    EXPECT_EQ(calls, static_cast<int>((n + kHashBlockSize - 1) / kHashBlockSize));
  }
}

TEST(FileHash, ShortFileIsAnIoErrorWhereverItEnds) {
  test::TempDir dir;
  const auto path = dir / "short";
  test::write_random_file(path, 3 * kHashBlockSize + 5, 1);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (const std::uint64_t claimed : {std::uint64_t{3 * kHashBlockSize + 6}, std::uint64_t{5 * kHashBlockSize},
                                      std::uint64_t{50 * kHashBlockSize}}) {
    const auto r = sha256_fd(fd, claimed);
    ASSERT_FALSE(r) << claimed;
    EXPECT_EQ(r.error().code, ErrorCode::io);
    EXPECT_NE(r.error().message.find("file ended at"), std::string::npos) << r.error().message;
  }
  // A prefix is fine.
  const auto prefix = sha256_fd(fd, 2 * kHashBlockSize);
  ASSERT_TRUE(prefix);
  const std::string content = test::read_file(path);
  EXPECT_EQ(to_hex(*prefix), test::sha256_hex(std::string_view(content).substr(0, 2 * kHashBlockSize)));
  ::close(fd);
}

TEST(FileHash, Errors) {
  test::TempDir dir;
  auto r = sha256_file((dir / "missing").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  r = sha256_file(dir.str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
}

}  // namespace
}  // namespace otter
