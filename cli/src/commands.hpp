// otter CLI — the `push` and `stat` commands, once the arguments are parsed. Each returns the process exit code and
// prints its result: one line on stdout (or one JSON object with --json), errors on stderr.
#pragma once

#include <cstdint>
#include <string>

#include "otter/common/push_client.hpp"

namespace otter::cli {

struct CommonArgs {
  std::string target;  ///< HOST[:PORT]
  std::string key_file;
  bool json = false;
  bool quiet = false;
  int verbose = 0;
  double timeout = 30.0;          ///< idle timeout, seconds
  double connect_timeout = 10.0;  ///< seconds
};

struct PushArgs {
  CommonArgs common;
  std::string file;
  std::string name;  ///< --as; empty and !name_given = the file's basename
  bool name_given = false;
  std::string kind;  ///< empty: "file" (arduino-ota: "firmware")
  bool reboot = false;
  std::string sha256;  ///< --sha256: claimed hash, skips hashing the file
  std::uint32_t chunk_size = kDefaultChunkSize;
  bool skip_unchanged = false;
  // Stock devices (issue 7): adapters.hpp.
  std::string protocol = "otter";
  std::string password_file;
  bool verify = false;
  bool force = false;
  std::string callback;  ///< arduino-ota: HOST[:PORT] the device connects back to
};

struct StatArgs {
  CommonArgs common;
  std::string name;
};

int run_push(const PushArgs& args);
int run_stat(const StatArgs& args);

}  // namespace otter::cli
