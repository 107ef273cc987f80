// otter CLI — parsing of command-line values: HOST[:PORT] targets and SHA-256 digests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "otter/common/error.hpp"
#include "otter/common/file_hash.hpp"

namespace otter::cli {

struct Target {
  std::string host;  ///< without brackets for IPv6
  std::uint16_t port = 0;
};

/// "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 literal ("::1", no port). INVALID_ARGUMENT otherwise.
Result<Target> parse_target(std::string_view text, std::uint16_t default_port);

/// 64 hex digits (either case). INVALID_ARGUMENT otherwise.
Result<Sha256Digest> parse_sha256(std::string_view text);

}  // namespace otter::cli
