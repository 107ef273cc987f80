// Host emulation of arduino-esp32's WiFiServer over a POSIX listening socket (non-blocking, as the real one): begin()
// listens, accept() returns a connected WiFiClient or an empty one at once. The emulation binds 127.0.0.1 only, and
// port 0 means an ephemeral port, as lwIP does (otter_host::bound_port() tells which).
#pragma once

#include <stdint.h>

#include "Arduino.h"
#include "WiFiClient.h"

class WiFiServer {
 public:
  explicit WiFiServer(uint16_t port = 80, uint8_t max_clients = 4);
  ~WiFiServer();
  WiFiServer(const WiFiServer&) = delete;
  WiFiServer& operator=(const WiFiServer&) = delete;

  void begin(uint16_t port = 0);
  WiFiClient accept();
  WiFiClient available() { return accept(); }
  bool hasClient();
  void setNoDelay(bool nodelay) { no_delay_ = nodelay; }
  bool getNoDelay() const { return no_delay_; }
  void end();
  void close() { end(); }
  void stop() { end(); }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
  int pending_ = -1;  // a connection taken by hasClient(), handed out by the next accept()
  uint16_t port_;
  bool no_delay_ = false;
};
