// otter test support — paths of built binaries. OTTER_BIN_DIR is a compile definition that otter_add_test sets on
// every test executable (tests/CMakeLists.txt); these functions are inline so that the consumer's value is used.
#pragma once

#include <string>
#include <string_view>

#ifndef OTTER_BIN_DIR
#error "OTTER_BIN_DIR is not defined: build the test with otter_add_test (tests/CMakeLists.txt)"
#endif

namespace otter::test {

/// OTTER_BIN_DIR "/" name
inline std::string bin_path(std::string_view name) { return std::string(OTTER_BIN_DIR) + "/" + std::string(name); }
/// The device agent, build/bin/otter-agent.
inline std::string agent_bin() { return bin_path("otter-agent"); }
/// The push client, build/bin/otter.
inline std::string otter_bin() { return bin_path("otter"); }

}  // namespace otter::test
