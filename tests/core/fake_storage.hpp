// otter tests — an in-memory StoragePort with the semantics of ports.hpp, plus injected failures and call counts.
//
// FakeDevice is the state every session of one device shares (files, partial copies, name locks); FakeStorage is
// one session's port, like PosixDevice / PosixStorage.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "otter/core/ports.hpp"

namespace otter::test {

using Bytes = std::vector<std::uint8_t>;

struct FakePartial {
  std::uint64_t size = 0;
  std::uint8_t sha256[core::kHashSize] = {};
  Bytes bytes;
};

struct FakeDevice {
  std::map<std::string, Bytes> files;
  std::map<std::string, FakePartial> partials;
  std::set<std::string> locked;
  std::uint64_t free = std::uint64_t{1} << 32;

  // Injected failures (the next matching call fails with this error).
  std::optional<core::Error> fail_begin;
  std::optional<core::Error> fail_commit;
  std::optional<core::Error> fail_stat;
  /// write() fails once this many content bytes have been written in a transfer.
  std::optional<std::uint64_t> fail_write_after;
  core::Error write_error{ErrorCode::storage, "injected write failure"};

  // Call counts.
  int begins = 0;
  int commits = 0;
  int suspends = 0;
  int discards = 0;
  int stats = 0;
  std::uint64_t bytes_written = 0;

  void put_file(const std::string& name, const Bytes& content) { files[name] = content; }
};

class FakeStorage final : public core::StoragePort {
 public:
  explicit FakeStorage(FakeDevice& dev) : dev_(dev) {}
  ~FakeStorage() {
    if (open_) suspend();
  }
  FakeStorage(const FakeStorage&) = delete;
  FakeStorage& operator=(const FakeStorage&) = delete;

  std::uint64_t free_space() override { return dev_.free; }

  core::Result<std::uint64_t> begin(core::ByteView name, core::Kind /*kind*/, std::uint64_t size,
                                    const std::uint8_t sha256[core::kHashSize], core::Sha256& hasher) override {
    ++dev_.begins;
    if (open_) return core::fail(ErrorCode::internal, "fake: begin() with a transfer open");
    if (dev_.fail_begin) {
      const core::Error e = *dev_.fail_begin;
      dev_.fail_begin.reset();
      return tl::unexpected<core::Error>(e);
    }
    std::string n(reinterpret_cast<const char*>(name.data), name.size);
    if (dev_.locked.count(n) != 0) return core::fail(ErrorCode::busy, "fake: name is being received");
    dev_.locked.insert(n);
    open_ = true;
    name_ = n;
    written_ = 0;
    auto it = dev_.partials.find(n);
    if (it != dev_.partials.end() && it->second.size == size &&
        std::memcmp(it->second.sha256, sha256, core::kHashSize) == 0) {
      hasher.update(it->second.bytes.data(), it->second.bytes.size());
      return static_cast<std::uint64_t>(it->second.bytes.size());
    }
    FakePartial p;
    p.size = size;
    std::memcpy(p.sha256, sha256, core::kHashSize);
    dev_.partials[n] = p;
    return std::uint64_t{0};
  }

  core::Result<void> write(const std::uint8_t* data, std::size_t n) override {
    if (!open_) return core::fail(ErrorCode::internal, "fake: write() without a transfer");
    if (dev_.fail_write_after && written_ + n > *dev_.fail_write_after) {
      dev_.fail_write_after.reset();
      return tl::unexpected<core::Error>(dev_.write_error);
    }
    Bytes& b = dev_.partials[name_].bytes;
    b.insert(b.end(), data, data + n);
    written_ += n;
    dev_.bytes_written += n;
    return {};
  }

  core::Result<void> commit() override {
    ++dev_.commits;
    if (!open_) return core::fail(ErrorCode::internal, "fake: commit() without a transfer");
    open_ = false;
    dev_.locked.erase(name_);
    if (dev_.fail_commit) {
      const core::Error e = *dev_.fail_commit;
      dev_.fail_commit.reset();
      return tl::unexpected<core::Error>(e);  // target intact, partial copy kept
    }
    dev_.files[name_] = dev_.partials[name_].bytes;
    dev_.partials.erase(name_);
    return {};
  }

  void suspend() override {
    ++dev_.suspends;
    if (!open_) return;
    open_ = false;
    dev_.locked.erase(name_);
  }

  void discard() override {
    ++dev_.discards;
    if (!open_) return;
    open_ = false;
    dev_.partials.erase(name_);
    dev_.locked.erase(name_);
  }

  core::Result<core::FileStat> stat(core::ByteView name, core::Sha256& hasher) override {
    ++dev_.stats;
    if (dev_.fail_stat) {
      const core::Error e = *dev_.fail_stat;
      dev_.fail_stat.reset();
      return tl::unexpected<core::Error>(e);
    }
    core::FileStat st;
    auto it = dev_.files.find(std::string(reinterpret_cast<const char*>(name.data), name.size));
    if (it == dev_.files.end()) return st;
    st.exists = true;
    st.size = it->second.size();
    hasher.update(it->second.data(), it->second.size());
    hasher.finish(st.sha256);
    return st;
  }

  [[nodiscard]] bool open() const { return open_; }

 private:
  FakeDevice& dev_;
  bool open_ = false;
  std::string name_;
  std::uint64_t written_ = 0;
};

}  // namespace otter::test
