// OtterOTA — authenticated, SHA-256 verified, resumable OTA for ESP32 sketches, speaking otter protocol v1.
//
//   #include <OtterOTA.h>
//   void setup() { WiFi.begin(...); ...; OtterOTA.begin("a-long-device-secret-0123"); }
//   void loop()  { OtterOTA.handle(); ... }
//
// Files (otter push --kind file) go to LittleFS through a partial copy in /.otter/part (temp + rename; an interrupted
// push resumes). Firmware (--kind firmware) goes through the Update library into the next OTA partition; the core
// verifies its SHA-256 before Update.end() makes it the boot partition. With --reboot the device restarts once the
// result has been sent. A new image boots PENDING_VERIFY (this library overrides verifyRollbackLater()): call
// OtterOTA.confirm() once the sketch is healthy, or setAutoConfirm(seconds); an image that resets before that rolls
// back to the previous one.
//
// Task mode: OtterOTA.beginTask(key) instead of begin() + handle(): the library serves from a FreeRTOS task of its
// own, so a sketch whose loop() blocks (sensors, displays) still takes updates. Callbacks then run on that task.
#pragma once

#include <Arduino.h>
#include <FS.h>
#include <WiFi.h>

#include <atomic>
#include <functional>
#include <optional>

#include "otter/core/ports.hpp"
#include "otter/core/receiver.hpp"
#include "otter/ports/mbedtls_crypto.hpp"
#include "otter_arduino/storage.h"

/// What a push delivers.
enum class OtterKind : uint8_t { File = 0, Firmware = 1 };

/// State of the running firmware image as this library reports it (HELLO fw_state, mDNS TXT "fw").
enum class OtterFwState : uint8_t { Unknown = 0, Valid = 1, PendingVerify = 2 };

class OtterOTAClass : private otter::core::ReceiverObserver {
 public:
  using StartCallback = std::function<void(const char* name, OtterKind kind, size_t size, size_t offset)>;
  using ProgressCallback = std::function<void(size_t received, size_t size)>;
  using EndCallback = std::function<void(const char* name, OtterKind kind, bool rebooting)>;
  using ErrorCallback = std::function<void(int code, const char* message)>;

  static constexpr uint16_t kDefaultPort = 12345;
  static constexpr size_t kMaxKey = 128;
  static constexpr size_t kRxBuffer = 2048;
  static constexpr uint32_t kTaskStack = 8192;  ///< bytes (ESP-IDF's xTaskCreate counts bytes)

  OtterOTAClass() = default;
  OtterOTAClass(const OtterOTAClass&) = delete;
  OtterOTAClass& operator=(const OtterOTAClass&) = delete;

  // --- configuration (before begin) ---
  /// Device id sent in HELLO and the mDNS TXT record (1..64 printable bytes). Default: WiFi.getHostname().
  OtterOTAClass& setDeviceId(const char* id);
  /// mDNS host name (default: the device id). Empty string: no mDNS.
  OtterOTAClass& setHostname(const char* hostname);
  /// Where files go (default LittleFS, mounted by begin() if needed). free_bytes reports the free space.
  OtterOTAClass& setFileSystem(fs::FS& fs, otter_arduino::FreeSpaceFn free_bytes);
  /// Accept firmware / file pushes (both on by default).
  OtterOTAClass& enableFirmware(bool on);
  OtterOTAClass& enableFiles(bool on);
  /// Confirm a PENDING_VERIFY image automatically after this many seconds of uptime (0 = never, the default).
  OtterOTAClass& setAutoConfirm(uint32_t seconds);
  /// Idle timeout of a session (default 30 s).
  OtterOTAClass& setTimeout(uint32_t ms);

  // --- callbacks (run from handle()) ---
  OtterOTAClass& onStart(StartCallback cb);
  OtterOTAClass& onProgress(ProgressCallback cb);
  OtterOTAClass& onEnd(EndCallback cb);
  OtterOTAClass& onError(ErrorCallback cb);

  /// Starts listening on `port` and advertises _otter._tcp over mDNS. `key` is the device's pre-shared secret
  /// (16..128 bytes; copied). False if the key is unusable, the file system cannot be mounted or the server cannot
  /// listen.
  bool begin(const char* key, uint16_t port = kDefaultPort);
  /// Serves the device: call from loop(). Never blocks for long (at most one socket write that the peer is slow to
  /// take). One session at a time: a second client is answered BUSY, unless the session has been silent for 5 s
  /// (its pusher is gone): then the new client takes over (an interrupted file transfer is kept for resume).
  void handle();
  /// begin(), then serve from a FreeRTOS task of its own: do not call handle() then. The task sleeps one tick
  /// whenever there was nothing to read or write (so lower-priority tasks and the idle task's watchdog run) and
  /// loops without sleeping while data flows. Callbacks run on the task. False as begin(), or if the task cannot be
  /// created.
  bool beginTask(const char* key, uint16_t port = kDefaultPort, uint32_t stack_bytes = kTaskStack,
                 UBaseType_t priority = 1);
  /// Stops the server, and the task of beginTask() (waiting for it to finish its current step). An open transfer is
  /// kept for resume.
  void end();

  /// Marks the running image valid (esp_ota_mark_app_valid_cancel_rollback). True if it is valid now. Safe to call
  /// from the sketch while the library serves from its task.
  bool confirm();
  /// Marks the running image invalid and reboots into the previous one (returns only if that is impossible).
  bool rollback();
  [[nodiscard]] OtterFwState fwState() const { return fw_state_; }
  [[nodiscard]] const char* deviceId() const { return device_id_; }
  [[nodiscard]] uint16_t port() const { return port_; }
  /// True while a client is connected.
  [[nodiscard]] bool busy() const { return active_.load(); }

 private:
  // ReceiverObserver
  void on_begin(otter::core::ByteView name, otter::core::Kind kind, uint64_t size, uint64_t offset) override;
  void on_progress(uint64_t received, uint64_t size) override;
  void on_committed(otter::core::ByteView name, otter::core::Kind kind, bool reboot) override;
  void on_error(otter::ErrorCode code, const char* message) override;

  void start_session(const WiFiClient& client);
  void pump();
  void begin_drain();
  void end_session(bool allow_reboot = true);
  void reject(WiFiClient& extra);
  void read_fw_state();
  void advertise();
  void copy_name(otter::core::ByteView name);
  static void task_main(void* self);

  // configuration
  char key_[kMaxKey] = {};
  size_t key_len_ = 0;
  char device_id_[otter::core::kMaxIdLen + 1] = {};
  char hostname_[otter::core::kMaxIdLen + 1] = {};
  bool hostname_set_ = false;
  uint16_t port_ = kDefaultPort;
  bool firmware_ = true;
  bool files_ = true;
  uint32_t auto_confirm_s_ = 0;
  uint32_t timeout_ms_ = 30000;
  fs::FS* fs_ = nullptr;
  otter_arduino::FreeSpaceFn free_bytes_ = nullptr;

  StartCallback on_start_;
  ProgressCallback on_progress_;
  EndCallback on_end_;
  ErrorCallback on_error_;

  // state
  std::atomic<OtterFwState> fw_state_{OtterFwState::Unknown};
  std::atomic<bool> readvertise_{false};  // the fw state changed: handle() updates the mDNS TXT record
  bool mdns_ = false;
  WiFiServer* server_ = nullptr;
  WiFiClient client_;
  std::atomic<bool> active_{false};
  uint32_t io_steps_ = 0;  // reads + writes that moved bytes (the task sleeps when a handle() moved none)
  TaskHandle_t task_ = nullptr;
  SemaphoreHandle_t task_done_ = nullptr;
  std::atomic<bool> task_stop_{false};
  bool draining_ = false;
  unsigned long drain_since_ = 0;
  unsigned long last_rx_ms_ = 0;
  std::optional<otter::ports::MbedTlsCrypto> crypto_;
  std::optional<otter_arduino::DeviceStorage> storage_;
  std::optional<otter::core::Receiver> rx_;
  uint8_t in_[kRxBuffer] = {};
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  char name_[otter::core::kMaxNameLen + 1] = {};
  OtterKind kind_ = OtterKind::File;
};

extern OtterOTAClass OtterOTA;
