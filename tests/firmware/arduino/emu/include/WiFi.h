// Host emulation of arduino-esp32's WiFi.h: station mode "connects" at once (the host's loopback is the network),
// the MAC address is a per-device random one kept in DATA/wifi-mac (locally administered), the hostname defaults to
// "esp32-" + the MAC's hex as arduino-esp32 does.
#pragma once

#include <stdint.h>

#include "Arduino.h"
#include "WiFiClient.h"
#include "WiFiServer.h"

typedef enum { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } wifi_mode_t;
typedef enum {
  WL_IDLE_STATUS = 0,
  WL_NO_SSID_AVAIL = 1,
  WL_CONNECTED = 3,
  WL_CONNECT_FAILED = 4,
  WL_DISCONNECTED = 6,
} wl_status_t;

class WiFiClass {
 public:
  bool mode(wifi_mode_t m) {
    mode_ = m;
    return true;
  }
  wl_status_t begin(const char* ssid, const char* passphrase = nullptr);
  wl_status_t status() const { return status_; }
  bool isConnected() const { return status_ == WL_CONNECTED; }
  uint8_t* macAddress(uint8_t* mac);
  const char* getHostname();
  bool setHostname(const char* hostname);

 private:
  wifi_mode_t mode_ = WIFI_OFF;
  wl_status_t status_ = WL_IDLE_STATUS;
  char hostname_[33] = {};
};

extern WiFiClass WiFi;
