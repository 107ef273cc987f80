// Running the `otter` binary from tests (used by tests/cli and tests/integration).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "otter/test/bin.hpp"
#include "otter/test/process.hpp"

namespace otter::test {

struct OtterRun {
  int exit_code = -1;
  std::string out;
  std::string err;
  std::string describe;  ///< argv + output, for assertion messages

  /// The single JSON object that --json promises on stdout (adds a gtest failure and returns null if it is not).
  [[nodiscard]] nlohmann::json json() const {
    const auto nl = out.find('\n');
    if (nl == std::string::npos || nl + 1 != out.size()) {
      ADD_FAILURE() << "stdout is not exactly one line:\n" << describe;
      return nullptr;
    }
    try {
      auto j = nlohmann::json::parse(out);
      if (!j.is_object()) ADD_FAILURE() << "stdout is not a JSON object:\n" << describe;
      return j;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "stdout is not JSON (" << e.what() << "):\n" << describe;
      return nullptr;
    }
  }
};

/// Runs build/bin/otter with `args` and waits (bounded) for it to exit.
inline OtterRun run_otter(std::vector<std::string> args,
                          std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  args.insert(args.begin(), otter_bin());
  Process p(args);
  OtterRun r;
  const auto code = p.wait(timeout);
  if (!code) {
    p.kill();
    ADD_FAILURE() << "otter did not exit within " << timeout.count() << " ms:\n" << p.output();
  }
  r.exit_code = code.value_or(-1);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  r.describe = p.output() + "\n(exit " + std::to_string(r.exit_code) + ")";
  return r;
}

/// Checks the shape {"ok":false,"error":{"code":N,"name":NAME,"message":"..."}}.
inline void expect_json_error(const OtterRun& r, int code, const std::string& name) {
  const auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.describe;
  EXPECT_EQ(j.value("ok", true), false) << r.describe;
  ASSERT_TRUE(j.contains("error") && j["error"].is_object()) << r.describe;
  EXPECT_EQ(j["error"].value("code", -1), code) << r.describe;
  EXPECT_EQ(j["error"].value("name", ""), name) << r.describe;
  EXPECT_TRUE(j["error"].contains("message") && j["error"]["message"].is_string() &&
              !j["error"]["message"].get<std::string>().empty())
      << r.describe;
}

}  // namespace otter::test
