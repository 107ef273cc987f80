// Name validation (protocol.md section 5), including a property test: no accepted name escapes the root.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core_test_util.hpp"
#include "otter/core/name.hpp"

namespace otter::test {
namespace {

using core::validate_name;

bool accepted(const std::string& s) { return static_cast<bool>(validate_name(view(s))); }

TEST(Name, AcceptsOrdinaryRelativeNames) {
  for (const std::string s : {"a", "a/b.txt", "main.py", "lib/umqtt/simple.py", "..a", "a..", ".hidden", "a/.b",
                              "a/..b/c", ".otterx", "x/.otter", "sp ace", "~", "a-b_c=d"}) {
    EXPECT_TRUE(accepted(s)) << s;
  }
  EXPECT_TRUE(accepted("\xc3\xa9t\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt"));  // été/日本.txt
  EXPECT_TRUE(accepted("\xf0\x9f\xa6\xa6"));                                // 🦦
  EXPECT_TRUE(accepted(std::string(255, 'x')));
  std::string deep;
  for (int i = 0; i < 127; ++i) deep += "a/";
  deep += "b";
  EXPECT_TRUE(accepted(deep));
}

TEST(Name, RefusesEveryRule) {
  const std::vector<std::string> bad = {
      "",    "../x",  "x/../y", "x/..",     "..",     "/etc/x", "/",      "a\\b", "\\",   "a//b", "a/", ".",
      "./a", "a/./b", "a/.",    ".otter/x", ".otter", "x\x01y", "x\x7fy", "\x1f", "a\tb", "a\nb", "//", "a///b",
  };
  for (const std::string& s : bad) {
    auto r = validate_name(view(s));
    ASSERT_FALSE(r) << '"' << s << '"';
    EXPECT_EQ(r.error().code, ErrorCode::bad_name);
    EXPECT_NE(std::string(r.error().message), "");
  }
  const std::string nul("a\0b", 3);
  EXPECT_FALSE(accepted(nul));
  EXPECT_FALSE(accepted(std::string(256, 'x')));
  EXPECT_FALSE(accepted(std::string("x\0", 2)));
}

// Resolves `name` segment by segment from the root; false if any step would go above it.
bool stays_under_root(const std::string& name) {
  int depth = 0;
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t slash = name.find('/', start);
    const std::size_t end = slash == std::string::npos ? name.size() : slash;
    const std::string seg = name.substr(start, end - start);
    if (seg == "..") {
      if (--depth < 0) return false;
    } else if (!seg.empty() && seg != ".") {
      ++depth;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return depth >= 1;  // it names something below the root, not the root itself
}

TEST(Name, PropertyAcceptedNamesNeverLeaveTheRoot) {
  // An alphabet heavy in the characters that build traversals.
  const std::string alphabet = std::string("./\\./\\./.a.b/") + std::string("\0", 1) + "\x01\x7f\xc3\xa9 o";
  std::mt19937_64 rng(0x0773e4);
  int accepted_count = 0, with_dots = 0;
  const std::filesystem::path root = "/srv/otter-root";
  for (int i = 0; i < 20000; ++i) {
    const std::size_t len = 1 + rng() % 12;
    std::string s;
    for (std::size_t j = 0; j < len; ++j) s += alphabet[rng() % alphabet.size()];
    if (!accepted(s)) continue;
    ++accepted_count;
    if (s.find("..") != std::string::npos) ++with_dots;
    SCOPED_TRACE(testing::Message() << "name " << testing::PrintToString(s));
    EXPECT_TRUE(stays_under_root(s));
    EXPECT_NE(s.front(), '/');
    EXPECT_EQ(s.find('\\'), std::string::npos);
    EXPECT_EQ(s.find('\0'), std::string::npos);
    // The same check by the standard library's lexical normalisation.
    const std::string joined = (root / s).lexically_normal().string();
    EXPECT_EQ(joined.rfind(root.string() + "/", 0), 0u) << joined;
    EXPECT_NE(joined, root.string() + "/");
  }
  // The property is not vacuous: plenty of names were accepted, including some with ".." inside segments.
  EXPECT_GT(accepted_count, 1000);
  EXPECT_GT(with_dots, 50);
}

}  // namespace
}  // namespace otter::test
