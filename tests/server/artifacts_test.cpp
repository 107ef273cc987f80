#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "otter/server/artifacts.hpp"

namespace otter::server {
namespace {
namespace fs = std::filesystem;

class ArtifactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("otter-art-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    fs::create_directories(base_ / "root" / "fw");
    fs::create_directories(base_ / "outside");
    write(base_ / "root" / "hello.txt", "hello");
    write(base_ / "root" / "fw" / "app.bin", "firmware");
    write(base_ / "outside" / "secret.txt", "secret");
    auto s = ArtifactStore::open((base_ / "root").string(), 1024);
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void TearDown() override { fs::remove_all(base_); }
  static void write(const fs::path& p, const std::string& content) { std::ofstream(p, std::ios::binary) << content; }
  ErrorCode code_of(const std::string& path) {
    auto r = store_->resolve(path);
    return r ? ErrorCode::ok : r.error().code;
  }
  fs::path base_;
  std::unique_ptr<ArtifactStore> store_;
};

TEST_F(ArtifactsTest, ResolvesRelativeAndAbsoluteInsideTheRoot) {
  auto r = store_->resolve_hashed("hello.txt");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->name, "hello.txt");
  EXPECT_EQ(r->size, 5u);
  EXPECT_EQ(r->sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
  auto abs = store_->resolve((fs::canonical(base_ / "root") / "fw" / "app.bin").string());
  ASSERT_TRUE(abs);
  EXPECT_EQ(abs->name, "fw/app.bin");
  EXPECT_EQ(code_of("fw/../hello.txt"), ErrorCode::ok);
  EXPECT_EQ(code_of("./fw/app.bin"), ErrorCode::ok);
}

TEST_F(ArtifactsTest, ConfinesToTheRoot) {
  EXPECT_EQ(code_of("missing.txt"), ErrorCode::not_found);
  EXPECT_EQ(store_->resolve("missing.txt").error().message, "File does not exist.");
  EXPECT_EQ(code_of("../outside/secret.txt"), ErrorCode::forbidden);
  EXPECT_EQ(code_of("fw/../../outside/secret.txt"), ErrorCode::forbidden);
  EXPECT_EQ(code_of("/etc/passwd"), ErrorCode::forbidden);
  EXPECT_EQ(code_of((base_ / "outside" / "secret.txt").string()), ErrorCode::forbidden);
  EXPECT_EQ(code_of("../outside/does-not-exist"), ErrorCode::forbidden) << "no probing outside the root";
  EXPECT_EQ(code_of("%2e%2e/outside/secret.txt"), ErrorCode::not_found) << "paths are literal, not URL-decoded";
  EXPECT_EQ(code_of("fw"), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of(""), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of(std::string("a\0b", 3)), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of(std::string(5000, 'a')), ErrorCode::invalid_argument);
  EXPECT_EQ(code_of(std::string(300, 'a')), ErrorCode::invalid_argument);
}

TEST_F(ArtifactsTest, SymlinksMayNotEscape) {
  fs::create_symlink(base_ / "outside" / "secret.txt", base_ / "root" / "link.txt");
  fs::create_symlink(base_ / "outside", base_ / "root" / "outdir");
  fs::create_symlink(base_ / "root" / "hello.txt", base_ / "root" / "inner.txt");
  EXPECT_EQ(code_of("link.txt"), ErrorCode::forbidden);
  EXPECT_EQ(code_of("outdir/secret.txt"), ErrorCode::forbidden);
  EXPECT_EQ(code_of("outdir/nothing"), ErrorCode::forbidden);
  EXPECT_EQ(code_of("inner.txt"), ErrorCode::ok) << "a symlink inside the root is fine";
  auto list = store_->list();
  ASSERT_TRUE(list);
  for (const auto& a : *list) EXPECT_NE(a.name.find("secret"), 0u) << a.name;
}

TEST_F(ArtifactsTest, ListsAndHashes) {
  auto list = store_->list();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "fw/app.bin");
  EXPECT_EQ((*list)[1].name, "hello.txt");
  EXPECT_EQ((*list)[1].sha256.size(), 64u);
}

TEST_F(ArtifactsTest, UploadsAppearAtomicallyAndRespectLimits) {
  {
    auto up = store_->begin_upload("new/file.bin");
    ASSERT_TRUE(up) << up.error().to_string();
    ASSERT_TRUE(up->write("abc", 3));
    EXPECT_FALSE(fs::exists(base_ / "root" / "new" / "file.bin")) << "not visible before commit";
    auto info = up->commit();
    ASSERT_TRUE(info);
    EXPECT_EQ(info->size, 3u);
  }
  EXPECT_TRUE(fs::exists(base_ / "root" / "new" / "file.bin"));
  {
    auto up = store_->begin_upload("big.bin");
    ASSERT_TRUE(up);
    std::string chunk(1000, 'x');
    ASSERT_TRUE(up->write(chunk.data(), chunk.size()));
    auto over = up->write(chunk.data(), chunk.size());
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, ErrorCode::payload_too_large);
  }
  EXPECT_FALSE(fs::exists(base_ / "root" / "big.bin"));
  for (const auto& e : fs::directory_iterator(base_ / "root")) {
    EXPECT_NE(e.path().filename().string().rfind(".upload-", 0), 0u) << "temp file left behind";
  }
  for (const char* bad : {"../x", "/abs", "a\\b", "a//b", ".hidden", "x/..", ""}) {
    auto up = store_->begin_upload(bad);
    EXPECT_FALSE(up) << bad;
  }
}

TEST_F(ArtifactsTest, Removes) {
  ASSERT_TRUE(store_->remove("hello.txt"));
  EXPECT_FALSE(fs::exists(base_ / "root" / "hello.txt"));
  EXPECT_EQ(store_->remove("../outside/secret.txt").error().code, ErrorCode::forbidden);
  EXPECT_TRUE(fs::exists(base_ / "outside" / "secret.txt"));
}

}  // namespace
}  // namespace otter::server
