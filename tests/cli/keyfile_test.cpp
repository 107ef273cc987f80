#include <sys/stat.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "otter/common/keyfile.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace otter {
namespace {

const std::string k16 = "0123456789abcdef";

TEST(ParseKey, TrimsSurroundingWhitespace) {
  EXPECT_EQ(parse_key(k16, "k").value(), k16);
  EXPECT_EQ(parse_key(k16 + "\n", "k").value(), k16);
  EXPECT_EQ(parse_key(k16 + "\r\n", "k").value(), k16);
  EXPECT_EQ(parse_key("  \t" + k16 + " \t\n\n", "k").value(), k16);
  EXPECT_EQ(parse_key("\n\n" + k16 + "\n", "k").value(), k16);
}

TEST(ParseKey, KeepsInnerWhitespace) {
  EXPECT_EQ(parse_key("  correct horse battery staple \n", "k").value(), "correct horse battery staple");
}

TEST(ParseKey, ExactlySixteenBytesIsEnough) {
  ASSERT_TRUE(parse_key(k16, "k"));
  const auto r = parse_key(k16.substr(0, 15), "my.key");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
  EXPECT_NE(r.error().message.find("my.key"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("15 bytes"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("16"), std::string::npos) << r.error().message;
}

TEST(ParseKey, WhitespaceDoesNotCountTowardsTheLength) {
  const auto r = parse_key("   short-key-123   \n", "k");  // 13 bytes once trimmed
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
}

TEST(ParseKey, EmptyOrBlankIsRefused) {
  for (const char* content : {"", "\n", "   \t\r\n  "}) {
    const auto r = parse_key(content, "k");
    ASSERT_FALSE(r) << '"' << content << '"';
    EXPECT_EQ(r.error().code, ErrorCode::config);
    EXPECT_NE(r.error().message.find("empty"), std::string::npos) << r.error().message;
  }
}

TEST(ParseKey, SeveralLinesAreRefused) {
  for (const std::string& content : {k16 + "\n" + k16, k16 + "\r\nsecond line\n", k16 + "\rx"}) {
    const auto r = parse_key(content, "k");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::config);
    EXPECT_NE(r.error().message.find("line"), std::string::npos) << r.error().message;
  }
}

TEST(ParseKey, MessageNeverContainsTheSecret) {
  const auto r = parse_key("secret-part-one\nsecret-part-two", "k");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message.find("secret-part"), std::string::npos) << r.error().message;
}

TEST(ReadKeyFile, ReadsAFile) {
  test::TempDir dir;
  test::write_file(dir / "key", "  " + k16 + "xyz\n");
  EXPECT_EQ(read_key_file((dir / "key").string()).value(), k16 + "xyz");
}

TEST(ReadKeyFile, MissingFileIsNotFound) {
  test::TempDir dir;
  const auto r = read_key_file((dir / "nope").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_NE(r.error().message.find("nope"), std::string::npos);
}

TEST(ReadKeyFile, ShortKeyIsConfig) {
  test::TempDir dir;
  test::write_file(dir / "key", "tooshort\n");
  const auto r = read_key_file((dir / "key").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
}

TEST(ReadKeyFile, DirectoryIsConfig) {
  test::TempDir dir;
  const auto r = read_key_file(dir.str());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
}

TEST(ReadKeyFile, HugeFileIsRefused) {
  test::TempDir dir;
  test::write_file(dir / "key", std::string(kMaxKeyFileSize + 1, 'k'));
  const auto r = read_key_file((dir / "key").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
}

TEST(ReadKeyFile, UnreadableFileIsConfig) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  test::TempDir dir;
  test::write_file(dir / "key", k16);
  ASSERT_EQ(::chmod((dir / "key").c_str(), 0), 0);
  const auto r = read_key_file((dir / "key").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::config);
}

}  // namespace
}  // namespace otter
