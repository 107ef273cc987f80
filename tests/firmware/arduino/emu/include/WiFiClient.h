// Host emulation of arduino-esp32's WiFiClient over a POSIX TCP socket, with the real class's semantics:
//   - copies share the socket (the real one holds a shared_ptr to its socket handle); the last copy closes it;
//   - read() never blocks: the bytes available now (0 if none, also at end of stream), -1 on a socket error;
//   - available() is what can be read without blocking; connected() is false once the peer has closed and nothing
//     is left to read, or after an error / stop();
//   - write() waits (select, up to 10 retries of 1 s, as the real WIFI_CLIENT_MAX_WRITE_RETRY) while the socket is
//     not writable and returns how many bytes were sent; a hard error stops the client and returns what was sent.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>

#include "Arduino.h"

class WiFiClient : public Print {
 public:
  WiFiClient();
  /// Takes ownership of a connected socket.
  explicit WiFiClient(int fd);
  ~WiFiClient() override;
  WiFiClient(const WiFiClient&) = default;
  WiFiClient& operator=(const WiFiClient& other);

  using Print::write;
  size_t write(uint8_t data) override { return write(&data, 1); }
  size_t write(const uint8_t* buf, size_t size) override;
  int available();
  int read();
  int read(uint8_t* buf, size_t size);
  void flush() {}
  void stop();
  uint8_t connected();
  explicit operator bool() { return connected() != 0; }
  int setNoDelay(bool nodelay);
  int fd() const;
  uint16_t remotePort() const;
  uint16_t localPort() const;

 private:
  struct Socket;
  std::shared_ptr<Socket> sock_;
  bool connected_ = false;
};
