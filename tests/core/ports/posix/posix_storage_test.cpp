// PosixStorage / PosixDevice on real temporary directories.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "otter/ports/openssl_crypto.hpp"
#include "otter/ports/posix_storage.hpp"
#include "otter/test/files.hpp"
#include "otter/test/temp_dir.hpp"

namespace fs = std::filesystem;
using otter::ErrorCode;
using otter::core::ByteView;
using otter::core::Kind;
using otter::ports::OpenSslSha256;
using otter::ports::PosixDevice;
using otter::ports::PosixStorage;
using otter::test::read_file;
using otter::test::sha256;
using otter::test::sha256_hex;
using otter::test::TempDir;
using otter::test::write_file;

namespace {

ByteView bv(const std::string& s) { return ByteView(s.data(), s.size()); }
const std::uint8_t* u8(const std::string& s) { return reinterpret_cast<const std::uint8_t*>(s.data()); }

std::string finish_hex(OpenSslSha256& h) {
  std::uint8_t d[32];
  h.finish(d);
  return otter::test::to_hex(d, sizeof d);
}

class PosixStorageTest : public ::testing::Test {
 protected:
  TempDir dir{"otter-posix-test"};
  fs::path root = dir / "root";
  PosixDevice dev{root.string()};
  OpenSslSha256 hasher;

  /// The files of ROOT/.otter/part (names only).
  std::vector<std::string> part_files() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / ".otter" / "part", ec)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }

  /// begin + write (in chunks) + commit.
  otter::core::Result<void> push(PosixStorage& s, const std::string& name, const std::string& content,
                                 std::size_t chunk = 7000) {
    const auto sha = sha256(content);
    hasher.reset();
    auto b = s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher);
    if (!b) return tl::unexpected(b.error());
    for (std::size_t off = *b; off < content.size(); off += chunk) {
      auto w = s.write(u8(content) + off, std::min(chunk, content.size() - off));
      if (!w) return w;
    }
    return s.commit();
  }
};

TEST_F(PosixStorageTest, RootIsCreated) { EXPECT_TRUE(fs::is_directory(root)); }

TEST_F(PosixStorageTest, CommitCreatesParentsAndLeavesNoPartial) {
  PosixStorage s(dev);
  const auto content = otter::test::random_bytes(200 * 1024 + 17, 1);
  ASSERT_TRUE(push(s, "a/b/c.bin", content));
  EXPECT_EQ(read_file(root / "a/b/c.bin"), content);
  EXPECT_TRUE(part_files().empty());
  EXPECT_EQ(otter::test::list_tree(root),
            (std::vector<std::string>{".otter/", ".otter/part/", "a/", "a/b/", "a/b/c.bin"}));
}

TEST_F(PosixStorageTest, ZeroSizeFile) {
  PosixStorage s(dev);
  ASSERT_TRUE(push(s, "empty", ""));
  EXPECT_TRUE(fs::is_regular_file(root / "empty"));
  EXPECT_EQ(fs::file_size(root / "empty"), 0u);
}

TEST_F(PosixStorageTest, FirmwareKindIsStoredLikeAFile) {
  PosixStorage s(dev);
  const std::string content = "firmware image";
  const auto sha = sha256(content);
  ASSERT_EQ(s.begin(bv(std::string("fw.bin")), Kind::firmware, content.size(), sha.data(), hasher), 0u);
  ASSERT_TRUE(s.write(u8(content), content.size()));
  ASSERT_TRUE(s.commit());
  EXPECT_EQ(read_file(root / "fw.bin"), content);
}

TEST_F(PosixStorageTest, PartialCopyLayout) {
  PosixStorage s(dev);
  const std::string name = "dir/file.txt";
  const std::string content = "0123456789";
  const auto sha = sha256(content);
  ASSERT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 0u);
  ASSERT_TRUE(s.write(u8(content), 4));
  const std::string key = sha256_hex(name);
  EXPECT_EQ(part_files(), (std::vector<std::string>{key + ".meta", key + ".part"}));
  EXPECT_EQ(read_file(root / ".otter/part" / (key + ".meta")), "10 " + sha256_hex(content) + "\n");
  EXPECT_EQ(read_file(root / ".otter/part" / (key + ".part")), "0123");
  // Nothing appears at the target, and no parent directory is created before commit.
  EXPECT_FALSE(fs::exists(root / "dir"));
  s.discard();
  EXPECT_TRUE(part_files().empty());
  EXPECT_FALSE(fs::exists(root / "dir"));
}

TEST_F(PosixStorageTest, TargetIsOldUntilCommit) {
  write_file(root / "t.bin", "old content");
  PosixStorage s(dev);
  const auto content = otter::test::random_bytes(100000, 2);
  const auto sha = sha256(content);
  ASSERT_EQ(s.begin(bv(std::string("t.bin")), Kind::file, content.size(), sha.data(), hasher), 0u);
  // A reader holding the old file keeps seeing the old content after the commit (rename, not overwrite).
  const int old_fd = ::open((root / "t.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(old_fd, 0);
  for (std::size_t off = 0; off < content.size(); off += 30000) {
    ASSERT_TRUE(s.write(u8(content) + off, std::min<std::size_t>(30000, content.size() - off)));
    EXPECT_EQ(read_file(root / "t.bin"), "old content");
  }
  ASSERT_TRUE(s.commit());
  EXPECT_EQ(read_file(root / "t.bin"), content);
  char buf[64] = {};
  EXPECT_EQ(::pread(old_fd, buf, sizeof buf, 0), 11);
  EXPECT_STREQ(buf, "old content");
  ::close(old_fd);
}

TEST_F(PosixStorageTest, ConcurrentReaderSeesOldOrNewNeverPartial) {
  const auto a = otter::test::random_bytes(256 * 1024, 3);
  const auto b = otter::test::random_bytes(300 * 1024, 4);
  PosixStorage s(dev);
  ASSERT_TRUE(push(s, "x/target", a));
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    while (!done.load()) {
      const auto got = read_file(root / "x/target");  // the file always exists: rename replaces it atomically
      if (got != a && got != b) ++bad;
      ++reads;
    }
  });
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(push(s, "x/target", i % 2 == 0 ? b : a, 65536));
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(read_file(root / "x/target"), a);
}

TEST_F(PosixStorageTest, ResumeWhenSizeAndShaMatch) {
  const auto content = otter::test::random_bytes(3 * 65536 + 123, 5);
  const auto sha = sha256(content);
  const std::string name = "r/resume.bin";
  const std::size_t held = 2 * 65536 + 1000;  // crosses the 64 KiB read blocks
  {
    PosixStorage s(dev);
    ASSERT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 0u);
    ASSERT_TRUE(s.write(u8(content), held));
    s.suspend();
  }
  PosixStorage s2(dev);
  hasher.reset();
  auto b = s2.begin(bv(name), Kind::file, content.size(), sha.data(), hasher);
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, held);
  // The hasher was fed exactly the held bytes: continuing it with the rest yields the content's SHA-256.
  hasher.update(u8(content) + held, content.size() - held);
  EXPECT_EQ(finish_hex(hasher), sha256_hex(content));
  ASSERT_TRUE(s2.write(u8(content) + held, content.size() - held));
  ASSERT_TRUE(s2.commit());
  EXPECT_EQ(read_file(root / name), content);
  EXPECT_TRUE(part_files().empty());
}

TEST_F(PosixStorageTest, ResumeFromDestructorSuspend) {
  const auto content = otter::test::random_bytes(5000, 6);
  const auto sha = sha256(content);
  {
    PosixStorage s(dev);
    ASSERT_EQ(s.begin(bv(std::string("d")), Kind::file, content.size(), sha.data(), hasher), 0u);
    ASSERT_TRUE(s.write(u8(content), 1234));
  }  // destructor suspends and unlocks
  PosixStorage s2(dev);
  hasher.reset();
  EXPECT_EQ(s2.begin(bv(std::string("d")), Kind::file, content.size(), sha.data(), hasher), 1234u);
}

TEST_F(PosixStorageTest, MismatchDiscardsStalePartial) {
  const auto content = otter::test::random_bytes(10000, 7);
  const auto sha = sha256(content);
  const std::string name = "m";
  {
    PosixStorage s(dev);
    ASSERT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 0u);
    ASSERT_TRUE(s.write(u8(content), 5000));
    s.suspend();
  }
  const std::string part = (root / ".otter/part" / (sha256_hex(name) + ".part")).string();
  // Same name, different size: fresh start, the stale bytes are gone, the hasher was not fed.
  {
    PosixStorage s(dev);
    hasher.reset();
    EXPECT_EQ(s.begin(bv(name), Kind::file, content.size() + 1, sha.data(), hasher), 0u);
    EXPECT_EQ(fs::file_size(part), 0u);
    EXPECT_EQ(finish_hex(hasher), sha256_hex(""));
    ASSERT_TRUE(s.write(u8(content), 5000));
    s.suspend();
  }
  // Same size, different SHA-256: fresh start too.
  {
    PosixStorage s(dev);
    const auto other = sha256("something else");
    hasher.reset();
    EXPECT_EQ(s.begin(bv(name), Kind::file, content.size() + 1, other.data(), hasher), 0u);
    EXPECT_EQ(fs::file_size(part), 0u);
    s.suspend();
  }
}

TEST_F(PosixStorageTest, CorruptMetaOrOversizedPartialIsDiscarded) {
  const std::string content = "abcdefghij";
  const auto sha = sha256(content);
  const std::string name = "c";
  const fs::path part = root / ".otter/part" / (sha256_hex(name) + ".part");
  const fs::path meta = root / ".otter/part" / (sha256_hex(name) + ".meta");
  write_file(part, "abcdefghijKLMNOP");  // more than the size
  write_file(meta, "10 " + sha256_hex(content) + "\n");
  PosixStorage s(dev);
  EXPECT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 0u);
  s.suspend();
  write_file(part, "abc");
  write_file(meta, "ten " + sha256_hex(content) + "\n");
  hasher.reset();
  EXPECT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 0u);
  s.suspend();
  // And a good meta is honoured (control).
  write_file(part, "abc");
  write_file(meta, "10 " + sha256_hex(content) + "\n");
  hasher.reset();
  EXPECT_EQ(s.begin(bv(name), Kind::file, content.size(), sha.data(), hasher), 3u);
  ASSERT_TRUE(s.write(u8(content) + 3, 7));
  ASSERT_TRUE(s.commit());
  EXPECT_EQ(read_file(root / name), content);
}

TEST_F(PosixStorageTest, DiscardRemovesPartialAndUnlocks) {
  PosixStorage s(dev);
  const auto sha = sha256("xyz");
  ASSERT_TRUE(s.begin(bv(std::string("z")), Kind::file, 3, sha.data(), hasher));
  ASSERT_TRUE(s.write(u8(std::string("xy")), 2));
  s.discard();
  EXPECT_TRUE(part_files().empty());
  EXPECT_FALSE(fs::exists(root / "z"));
  EXPECT_TRUE(dev.try_lock("z"));
  dev.unlock("z");
}

TEST_F(PosixStorageTest, SecondBeginOfLockedNameIsBusy) {
  PosixStorage a(dev);
  PosixStorage b(dev);
  const auto sha = sha256("x");
  ASSERT_TRUE(a.begin(bv(std::string("same")), Kind::file, 1, sha.data(), hasher));
  OpenSslSha256 h2;
  auto r = b.begin(bv(std::string("same")), Kind::file, 1, sha.data(), h2);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::busy);
  // The refused session did not disturb the holder's partial copy.
  ASSERT_TRUE(a.write(u8(std::string("x")), 1));
  // Other names are free; so is the same name on another device.
  EXPECT_TRUE(b.begin(bv(std::string("other")), Kind::file, 1, sha.data(), h2));
  b.discard();
  PosixDevice dev2((dir / "root2").string());
  PosixStorage c(dev2);
  EXPECT_TRUE(c.begin(bv(std::string("same")), Kind::file, 1, sha.data(), h2));
  c.discard();
  // Once the holder commits, the name is free again.
  ASSERT_TRUE(a.commit());
  h2.reset();
  EXPECT_TRUE(b.begin(bv(std::string("same")), Kind::file, 1, sha.data(), h2));
  b.discard();
}

TEST_F(PosixStorageTest, CommitFailureUnlocksAndKeepsVerifiedPartial) {
  PosixStorage s(dev);
  const std::string content = "payload";
  const auto sha = sha256(content);
  ASSERT_EQ(s.begin(bv(std::string("p/q")), Kind::file, content.size(), sha.data(), hasher), 0u);
  ASSERT_TRUE(s.write(u8(content), content.size()));
  write_file(root / "p", "a file where the parent directory should be");
  auto c = s.commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::bad_name) << c.error().message;
  EXPECT_EQ(read_file(root / "p"), "a file where the parent directory should be");
  // Unlocked, and the complete partial copy is offered for resume at its end.
  fs::remove(root / "p");
  hasher.reset();
  EXPECT_EQ(s.begin(bv(std::string("p/q")), Kind::file, content.size(), sha.data(), hasher), content.size());
  ASSERT_TRUE(s.commit());
  EXPECT_EQ(read_file(root / "p/q"), content);
}

TEST_F(PosixStorageTest, WriteBeyondSizeIsRefused) {
  PosixStorage s(dev);
  const auto sha = sha256("ab");
  ASSERT_TRUE(s.begin(bv(std::string("w")), Kind::file, 2, sha.data(), hasher));
  auto w = s.write(u8(std::string("abc")), 3);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ErrorCode::storage);
  s.discard();
}

TEST_F(PosixStorageTest, WriteWithoutTransferIsAnError) {
  PosixStorage s(dev);
  EXPECT_FALSE(s.write(u8(std::string("a")), 1));
  EXPECT_FALSE(s.commit());
  s.suspend();  // no-ops
  s.discard();
}

class PosixStorageSymlinkTest : public PosixStorageTest {
 protected:
  TempDir outside{"otter-posix-outside"};
  void SetUp() override {
    write_file(outside / "victim", "outside content");
    fs::create_directories(root);
  }
  void expect_outside_untouched() {
    EXPECT_EQ(otter::test::list_tree(outside.path()), (std::vector<std::string>{"victim"}));
    EXPECT_EQ(read_file(outside / "victim"), "outside content");
  }
  void expect_refused(const std::string& name, ErrorCode code) {
    PosixStorage s(dev);
    const auto sha = sha256("evil");
    hasher.reset();
    auto r = s.begin(bv(name), Kind::file, 4, sha.data(), hasher);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code, code) << name << ": " << r.error().message;
    EXPECT_TRUE(dev.try_lock(name)) << "refused begin left " << name << " locked";
    dev.unlock(name);
  }
};

TEST_F(PosixStorageSymlinkTest, DirectorySymlinkEscapeRefused) {
  fs::create_directory_symlink(outside.path(), root / "sub");
  expect_refused("sub/x", ErrorCode::bad_name);
  expect_refused("sub/victim", ErrorCode::bad_name);
  fs::create_directories(root / "d");
  fs::create_directory_symlink(outside.path(), root / "d/deeper");
  expect_refused("d/deeper/new/x", ErrorCode::bad_name);
  expect_outside_untouched();
}

TEST_F(PosixStorageSymlinkTest, TargetSymlinkRefused) {
  fs::create_symlink(outside / "victim", root / "t");
  expect_refused("t", ErrorCode::bad_name);
  EXPECT_TRUE(fs::is_symlink(root / "t"));
  expect_outside_untouched();
}

TEST_F(PosixStorageSymlinkTest, SymlinkPlantedDuringTransferRefusedAtCommit) {
  PosixStorage s(dev);
  const std::string content = "evil";
  const auto sha = sha256(content);
  ASSERT_TRUE(s.begin(bv(std::string("late/x")), Kind::file, content.size(), sha.data(), hasher));
  ASSERT_TRUE(s.write(u8(content), content.size()));
  fs::create_directory_symlink(outside.path(), root / "late");
  auto c = s.commit();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::bad_name);
  expect_outside_untouched();
}

TEST_F(PosixStorageSymlinkTest, OtterDirSymlinkRefused) {
  fs::create_directory_symlink(outside.path(), root / ".otter");
  expect_refused("a", ErrorCode::storage);
  expect_outside_untouched();
}

TEST_F(PosixStorageSymlinkTest, FileAsParentAndDirectoryAsTargetRefused) {
  write_file(root / "f", "file");
  fs::create_directories(root / "dir");
  expect_refused("f/x", ErrorCode::bad_name);
  expect_refused("dir", ErrorCode::bad_name);
  EXPECT_EQ(read_file(root / "f"), "file");
}

TEST_F(PosixStorageSymlinkTest, StatDoesNotFollowSymlinks) {
  fs::create_directory_symlink(outside.path(), root / "sub");
  fs::create_symlink(outside / "victim", root / "link");
  PosixStorage s(dev);
  for (const std::string name : {"sub/victim", "link"}) {
    hasher.reset();
    auto st = s.stat(bv(name), hasher);
    ASSERT_TRUE(st) << name;
    EXPECT_FALSE(st->exists) << name;
  }
}

TEST_F(PosixStorageTest, Stat) {
  PosixStorage s(dev);
  const auto content = otter::test::random_bytes(150000, 8);
  write_file(root / "a/file", content);
  write_file(root / "empty", "");
  fs::create_directories(root / "adir");
  ASSERT_EQ(::mkfifo((root / "fifo").c_str(), 0644), 0);

  auto st = s.stat(bv(std::string("a/file")), hasher);
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exists);
  EXPECT_EQ(st->size, content.size());
  EXPECT_EQ(otter::test::to_hex(st->sha256, 32), sha256_hex(content));

  hasher.reset();
  st = s.stat(bv(std::string("empty")), hasher);
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->exists);
  EXPECT_EQ(st->size, 0u);
  EXPECT_EQ(otter::test::to_hex(st->sha256, 32), sha256_hex(""));

  for (const std::string name : {"missing", "a/missing", "nodir/x", "adir", "fifo", "a/file/x"}) {
    hasher.reset();
    st = s.stat(bv(name), hasher);
    ASSERT_TRUE(st) << name;
    EXPECT_FALSE(st->exists) << name;
    EXPECT_EQ(st->size, 0u);
  }
}

TEST_F(PosixStorageTest, FreeSpaceIsReported) {
  PosixStorage s(dev);
  EXPECT_GT(s.free_space(), 0u);
  EXPECT_EQ(dev.max_size(), 0u);
  PosixDevice limited((dir / "r3").string(), 4096);
  EXPECT_EQ(limited.max_size(), 4096u);
}

TEST(PosixStorageNoSpace, WriteMapsEnospcToNoSpace) {
  // A real full file system: a 1 MiB tmpfs in a private mount namespace. Needs CAP_SYS_ADMIN (or user namespaces).
  TempDir dir{"otter-posix-nospace"};
  const fs::path mnt = dir.mkdir("mnt");
  if (::unshare(CLONE_NEWNS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    GTEST_SKIP() << "cannot create a mount namespace: " << std::strerror(errno);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs: " << std::strerror(errno);
  }
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};

  PosixDevice dev((mnt / "root").string());
  PosixStorage s(dev);
  EXPECT_LE(s.free_space(), 1024u * 1024u);
  const auto content = otter::test::random_bytes(4 * 1024 * 1024, 9);
  const auto sha = sha256(content);
  OpenSslSha256 hasher;
  ASSERT_TRUE(s.begin(bv(std::string("big")), Kind::file, content.size(), sha.data(), hasher));
  otter::core::Result<void> w;
  std::size_t off = 0;
  for (; off < content.size() && w; off += 65536) w = s.write(u8(content) + off, 65536);
  ASSERT_FALSE(w) << "wrote " << off << " bytes to a 1 MiB file system";
  EXPECT_EQ(w.error().code, ErrorCode::no_space) << w.error().message;
  s.discard();
  EXPECT_FALSE(fs::exists(mnt / "root/big"));
}

}  // namespace
