// otter-agent --mode arduino-ota | webrepl | legacy: faithful simulators of stock devices (issue 7), so that the
// adapters, the server's jobs, the tests and the demo run without hardware. Each behaves like the stock firmware on
// the wire (timeouts and error texts included) and writes what it receives into --root.
#pragma once

#include <string>

#include "otter/agent/options.hpp"

namespace otter::agent::sim {

// Each listens as the options say (--listen; --root created if missing), prints
//   "otter-agent: device ID listening on ADDR root DIR"
// on stdout once ready (ADDR: the UDP port for arduino-ota, the TCP port otherwise), serves until SIGINT / SIGTERM
// and returns the process exit code (0 after a signal, 1 if it cannot listen or write the root). `password` is the
// content of --password-file (empty: none).
int run_legacy(const Options& opts);
int run_webrepl(const Options& opts, const std::string& password);
int run_arduino_ota(const Options& opts, const std::string& password);

}  // namespace otter::agent::sim
