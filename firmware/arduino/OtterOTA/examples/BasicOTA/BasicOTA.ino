// BasicOTA — receive files (to LittleFS) and firmware (to the next OTA partition) with otter:
//
//   otter push config.json --to <device-ip> --key-file device.key              # a file
//   otter push firmware.bin --to <device-ip> --key-file device.key --kind firmware --reboot
//
// A new firmware image boots "pending verify": this sketch confirms it after 30 s of healthy uptime
// (setAutoConfirm(OTTER_AUTO_CONFIRM_S)); an image that resets before that rolls back to the previous one. See
// ConfirmAfterSelfTest for confirming from the sketch's own checks.
#include <LittleFS.h>
#include <OtterOTA.h>
#include <WiFi.h>

// Set these for your network and device (or define them with build flags).
#ifndef OTTER_WIFI_SSID
#define OTTER_WIFI_SSID "your-ssid"
#endif
#ifndef OTTER_WIFI_PASSWORD
#define OTTER_WIFI_PASSWORD "your-password"
#endif
// The device's pre-shared key (16..128 bytes): the same line as in the pusher's --key-file.
#ifndef OTTER_KEY
#define OTTER_KEY "change-me-to-a-long-device-secret"
#endif
#ifndef OTTER_PORT
#define OTTER_PORT 12345
#endif
// Seconds of healthy uptime after which a new firmware image is confirmed (0 = never: call OtterOTA.confirm()).
#ifndef OTTER_AUTO_CONFIRM_S
#define OTTER_AUTO_CONFIRM_S 30
#endif

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(OTTER_WIFI_SSID, OTTER_WIFI_PASSWORD);
  while (WiFi.status() != WL_CONNECTED) delay(100);

  LittleFS.begin(true);  // format on first use

  OtterOTA.setAutoConfirm(OTTER_AUTO_CONFIRM_S);
  OtterOTA.onStart([](const char* name, OtterKind kind, size_t size, size_t offset) {
    Serial.printf("otter: receiving %s '%s' (%u bytes, from %u)\n", kind == OtterKind::Firmware ? "firmware" : "file",
                  name, static_cast<unsigned>(size), static_cast<unsigned>(offset));
  });
  OtterOTA.onEnd([](const char* name, OtterKind, bool rebooting) {
    Serial.printf("otter: '%s' committed%s\n", name, rebooting ? ", rebooting" : "");
  });
  OtterOTA.onError([](int code, const char* message) { Serial.printf("otter: error %d: %s\n", code, message); });
  if (!OtterOTA.begin(OTTER_KEY, OTTER_PORT)) {
    Serial.println("otter: cannot start (key shorter than 16 bytes? file system?)");
    return;
  }
  Serial.printf("otter: device %s on port %u, firmware %s\n", OtterOTA.deviceId(),
                static_cast<unsigned>(OtterOTA.port()),
                OtterOTA.fwState() == OtterFwState::PendingVerify ? "pending verify" : "valid");
}

void loop() {
  OtterOTA.handle();
  // ... the sketch's own work, without long blocking calls ...
}
