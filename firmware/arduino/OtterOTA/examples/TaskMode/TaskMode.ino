// TaskMode — OtterOTA serving from a FreeRTOS task of its own, for sketches whose loop() blocks (slow sensors,
// displays, long delays): updates are taken whatever loop() is doing.
//
//   otter push firmware.bin --to <device-ip> --key-file device.key --kind firmware --reboot
//
// Callbacks run on OtterOTA's task, not in loop(): keep them short and thread-safe. This sketch confirms a new image
// from loop() once its own work has run a few times.
#include <LittleFS.h>
#include <OtterOTA.h>
#include <WiFi.h>

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

static unsigned healthy_rounds = 0;

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(OTTER_WIFI_SSID, OTTER_WIFI_PASSWORD);
  while (WiFi.status() != WL_CONNECTED) delay(100);
  LittleFS.begin(true);

  OtterOTA.onEnd([](const char* name, OtterKind, bool rebooting) {
    Serial.printf("otter: '%s' committed%s\n", name, rebooting ? ", rebooting" : "");
  });
  if (!OtterOTA.beginTask(OTTER_KEY, OTTER_PORT)) {
    Serial.println("otter: cannot start (key shorter than 16 bytes? file system? no memory for the task?)");
    return;
  }
  Serial.printf("otter: device %s serving from its own task on port %u\n", OtterOTA.deviceId(),
                static_cast<unsigned>(OtterOTA.port()));
}

void loop() {
  delay(500);  // the sketch's slow work: OtterOTA keeps serving meanwhile
  if (OtterOTA.fwState() == OtterFwState::PendingVerify && ++healthy_rounds >= 3) {
    Serial.println(OtterOTA.confirm() ? "otter: new firmware confirmed" : "otter: confirm failed");
  }
}
