// otter CLI — the commands that talk to otter-server's REST API (`otter --server URL ...`): devices, artifacts,
// deploy, jobs, watch. Same conventions as push/stat: one result on stdout (or exactly one JSON object with --json,
// except `watch` without a job, which prints one JSON object per event), errors on stderr, exit 0/1/2.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace otter::cli {

struct ServerArgs {
  std::string url;         ///< --server, or $OTTER_SERVER; default http://127.0.0.1:8080
  std::string token_file;  ///< --token-file; else $OTTER_TOKEN
  bool json = false;
  bool quiet = false;
  double timeout = 30.0;  ///< per HTTP request, seconds
};

struct DeviceArgs {
  std::string action = "list";  ///< list | show | add | set | rm | probe
  std::string name;
  std::string tag;  ///< list filter
  std::optional<std::string> address;
  std::optional<std::string> key_file;
  std::optional<std::string> protocol;
  std::optional<std::vector<std::string>> tags;
};

struct ArtifactArgs {
  std::string action = "list";  ///< list | upload | rm
  std::string file;             ///< upload: local file
  std::string name;             ///< upload: --as (default: basename); rm: NAME
};

struct DeployArgs {
  std::string artifact;
  std::vector<std::string> devices;
  std::string tag;
  std::string as;
  bool reboot = false;
  bool no_wait = false;
};

struct JobArgs {
  std::string action = "list";  ///< list | show | cancel
  std::int64_t id = 0;
  int limit = 20;
};

struct WatchArgs {
  std::optional<std::int64_t> job;
};

int run_devices(const ServerArgs& s, const DeviceArgs& a);
int run_artifacts(const ServerArgs& s, const ArtifactArgs& a);
int run_deploy(const ServerArgs& s, const DeployArgs& a);
int run_jobs(const ServerArgs& s, const JobArgs& a);
int run_watch(const ServerArgs& s, const WatchArgs& a);

}  // namespace otter::cli
