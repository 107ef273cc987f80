// ConfirmAfterSelfTest — accept a new firmware image only once the sketch has proven itself.
//
// After an OTA update the new image runs "pending verify". This sketch runs its self-test (here: the network is up,
// the file system works, and the loop has run for a few seconds); if it passes it calls OtterOTA.confirm() and the
// image stays. If the self-test fails it calls OtterOTA.rollback(): the device reboots into the previous image.
// If the sketch crashes or hangs (watchdog) before confirming, the next boot rolls back too.
#include <LittleFS.h>
#include <OtterOTA.h>
#include <WiFi.h>

#ifndef OTTER_WIFI_SSID
#define OTTER_WIFI_SSID "your-ssid"
#endif
#ifndef OTTER_WIFI_PASSWORD
#define OTTER_WIFI_PASSWORD "your-password"
#endif
#ifndef OTTER_KEY
#define OTTER_KEY "change-me-to-a-long-device-secret"
#endif
#ifndef OTTER_PORT
#define OTTER_PORT 12345
#endif
// How long the new image must run before the self-test may pass, ms.
#ifndef SELF_TEST_AFTER_MS
#define SELF_TEST_AFTER_MS 3000
#endif

static bool g_checked = false;

static bool fileSystemWorks() {
  File f = LittleFS.open("/.selftest", FILE_WRITE);
  if (!f) return false;
  const uint8_t probe[4] = {'o', 't', 't', 'r'};
  const bool wrote = f.write(probe, sizeof probe) == sizeof probe;
  f.close();
  return wrote && LittleFS.remove("/.selftest");
}

static bool selfTest() { return WiFi.status() == WL_CONNECTED && fileSystemWorks(); }

void setup() {
  Serial.begin(115200);
  WiFi.mode(WIFI_STA);
  WiFi.begin(OTTER_WIFI_SSID, OTTER_WIFI_PASSWORD);
  while (WiFi.status() != WL_CONNECTED) delay(100);
  LittleFS.begin(true);

  OtterOTA.onEnd([](const char* name, OtterKind, bool rebooting) {
    Serial.printf("otter: '%s' committed%s\n", name, rebooting ? ", rebooting" : "");
  });
  if (!OtterOTA.begin(OTTER_KEY, OTTER_PORT)) {
    Serial.println("otter: cannot start");
    return;
  }
  if (OtterOTA.fwState() == OtterFwState::PendingVerify) {
    Serial.println("self-test: new image, pending verify");
  } else {
    g_checked = true;  // nothing to decide
  }
}

void loop() {
  OtterOTA.handle();
  if (!g_checked && millis() >= SELF_TEST_AFTER_MS) {
    g_checked = true;
    if (selfTest() && OtterOTA.confirm()) {
      Serial.println("self-test: passed, image confirmed");
    } else {
      Serial.println("self-test: failed, rolling back");
      OtterOTA.rollback();
    }
  }
}
