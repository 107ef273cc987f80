#include "OtterOTA.h"

#include <ESPmDNS.h>
#include <LittleFS.h>
#include <esp_ota_ops.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

// The raw socket call below: lwIP's on the ESP32, the host's elsewhere.
#if __has_include(<lwip/sockets.h>)
#include <lwip/sockets.h>
#else
#include <sys/socket.h>
#endif

#include "otter/core/codec.hpp"

// Test-then-confirm: arduino-esp32 marks a PENDING_VERIFY image valid before setup() unless this weak hook of
// esp32-hal-misc.c returns true. OtterOTA leaves the decision to the sketch (confirm() / setAutoConfirm()).
extern "C" bool verifyRollbackLater() { return true; }

OtterOTAClass OtterOTA;

namespace {

using otter::core::ByteView;

/// How long a finished session keeps reading (and discarding) before closing, so that closing does not reset the
/// connection under a peer that has not read our last frame yet.
constexpr unsigned long kLingerMs = 1000;
/// Socket bytes taken per handle() call at most (keeps loop() responsive during a transfer).
constexpr size_t kMaxBytesPerHandle = size_t{16} * 1024;
/// A session silent for this long gives way to a new client (a pusher that vanished without closing, e.g. its WiFi
/// dropped, would otherwise hold the device for the whole idle timeout).
constexpr unsigned long kTakeoverMs = 5000;

/// True once the peer has closed its side (and everything it sent was read) or the connection failed.
/// WiFiClient::connected() alone does not always see a FIN on lwIP; a 1-byte MSG_PEEK does.
bool peer_gone(WiFiClient& c) {
  if (!c.connected()) return true;
  const int fd = c.fd();
  if (fd < 0) return true;
  uint8_t b = 0;
  const auto r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r > 0) return false;
  if (r == 0) return true;
  return errno != EWOULDBLOCK && errno != EAGAIN && errno != EINTR;
}

uint64_t littlefs_free() {
  const size_t total = LittleFS.totalBytes();
  const size_t used = LittleFS.usedBytes();
  return total > used ? total - used : 0;
}

bool printable_id(const char* s) {
  const size_t n = std::strlen(s);
  if (n == 0 || n > otter::core::kMaxIdLen) return false;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return false;
  }
  return true;
}

const char* fw_text(OtterFwState s) {
  switch (s) {
    case OtterFwState::Valid:
      return "valid";
    case OtterFwState::PendingVerify:
      return "pending_verify";
    case OtterFwState::Unknown:
      break;
  }
  return "unknown";
}

}  // namespace

// --- configuration ------------------------------------------------------------------------------------------------

OtterOTAClass& OtterOTAClass::setDeviceId(const char* id) {
  if (id != nullptr && printable_id(id)) std::snprintf(device_id_, sizeof device_id_, "%s", id);
  return *this;
}

OtterOTAClass& OtterOTAClass::setHostname(const char* hostname) {
  if (hostname != nullptr) {
    std::snprintf(hostname_, sizeof hostname_, "%s", hostname);
    hostname_set_ = true;
  }
  return *this;
}

OtterOTAClass& OtterOTAClass::setFileSystem(fs::FS& fs, otter_arduino::FreeSpaceFn free_bytes) {
  fs_ = &fs;
  free_bytes_ = free_bytes;
  return *this;
}

OtterOTAClass& OtterOTAClass::enableFirmware(bool on) {
  firmware_ = on;
  return *this;
}

OtterOTAClass& OtterOTAClass::enableFiles(bool on) {
  files_ = on;
  return *this;
}

OtterOTAClass& OtterOTAClass::setAutoConfirm(uint32_t seconds) {
  auto_confirm_s_ = seconds;
  return *this;
}

OtterOTAClass& OtterOTAClass::setTimeout(uint32_t ms) {
  timeout_ms_ = ms;
  return *this;
}

OtterOTAClass& OtterOTAClass::onStart(StartCallback cb) {
  on_start_ = std::move(cb);
  return *this;
}

OtterOTAClass& OtterOTAClass::onProgress(ProgressCallback cb) {
  on_progress_ = std::move(cb);
  return *this;
}

OtterOTAClass& OtterOTAClass::onEnd(EndCallback cb) {
  on_end_ = std::move(cb);
  return *this;
}

OtterOTAClass& OtterOTAClass::onError(ErrorCallback cb) {
  on_error_ = std::move(cb);
  return *this;
}

// --- lifecycle ----------------------------------------------------------------------------------------------------

bool OtterOTAClass::begin(const char* key, uint16_t port) {
  if (server_ != nullptr) return true;
  const size_t key_len = key != nullptr ? std::strlen(key) : 0;
  if (key_len < 16 || key_len > kMaxKey) return false;
  std::memcpy(key_, key, key_len);
  key_len_ = key_len;
  port_ = port;

  if (device_id_[0] == '\0') setDeviceId(WiFi.getHostname());
  if (device_id_[0] == '\0') {
    uint8_t mac[6];
    WiFi.macAddress(mac);
    std::snprintf(device_id_, sizeof device_id_, "esp32-%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3],
                  mac[4], mac[5]);
  }
  if (!hostname_set_) std::snprintf(hostname_, sizeof hostname_, "%s", device_id_);

  if (fs_ == nullptr) {
    if (!LittleFS.begin(true)) return false;  // already mounted by the sketch: returns true
    fs_ = &LittleFS;
    free_bytes_ = littlefs_free;
  }
  crypto_.emplace();
  storage_.emplace(*fs_, free_bytes_);
  read_fw_state();

  server_ = new WiFiServer(port_);
  server_->setNoDelay(true);
  server_->begin(port_);
  if (!*server_) {
    delete server_;
    server_ = nullptr;
    return false;
  }
  advertise();
  return true;
}

bool OtterOTAClass::beginTask(const char* key, uint16_t port, uint32_t stack_bytes, UBaseType_t priority) {
  if (task_ != nullptr) return true;
  if (!begin(key, port)) return false;
  task_done_ = xSemaphoreCreateBinary();
  task_stop_ = false;
  if (task_done_ == nullptr || xTaskCreate(task_main, "otter", stack_bytes, this, priority, &task_) != pdPASS) {
    if (task_done_ != nullptr) vSemaphoreDelete(task_done_);
    task_done_ = nullptr;
    task_ = nullptr;
    end();
    return false;
  }
  return true;
}

void OtterOTAClass::task_main(void* arg) {
  auto* self = static_cast<OtterOTAClass*>(arg);
  while (!self->task_stop_.load()) {
    const uint32_t before = self->io_steps_;
    self->handle();
    if (self->io_steps_ == before) vTaskDelay(1);  // idle: one tick for the others (and the idle task's watchdog)
  }
  xSemaphoreGive(self->task_done_);
  vTaskDelete(nullptr);
}

void OtterOTAClass::end() {
  if (task_ != nullptr) {
    task_stop_ = true;
    xSemaphoreTake(task_done_, portMAX_DELAY);  // the task finished its last handle() and ends
    vSemaphoreDelete(task_done_);
    task_done_ = nullptr;
    task_ = nullptr;
  }
  if (active_) {
    rx_->peer_closed();
    end_session();
  }
  if (server_ != nullptr) {
    server_->end();
    delete server_;
    server_ = nullptr;
  }
  if (mdns_) MDNS.end();
  mdns_ = false;
}

void OtterOTAClass::read_fw_state() {
  fw_state_ = OtterFwState::Unknown;
  const esp_partition_t* running = esp_ota_get_running_partition();
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  if (running == nullptr || esp_ota_get_state_partition(running, &state) != ESP_OK) {
    // A factory / serial-flashed image has no OTA state: it cannot roll back, so it counts as valid.
    fw_state_ = OtterFwState::Valid;
    return;
  }
  fw_state_ = state == ESP_OTA_IMG_PENDING_VERIFY ? OtterFwState::PendingVerify : OtterFwState::Valid;
  readvertise_ = true;
}

void OtterOTAClass::advertise() {
  if (hostname_[0] == '\0') return;
  if (!mdns_) {
    if (!MDNS.begin(hostname_)) return;
    mdns_ = true;
    MDNS.addService("otter", "tcp", port_);
    MDNS.addServiceTxt("otter", "tcp", "id", device_id_);
    MDNS.addServiceTxt("otter", "tcp", "proto", "1");
  }
  MDNS.addServiceTxt("otter", "tcp", "fw", fw_text(fw_state_));
  readvertise_ = false;
}

bool OtterOTAClass::confirm() {
  if (fw_state_ != OtterFwState::PendingVerify) return fw_state_ == OtterFwState::Valid;
  if (esp_ota_mark_app_valid_cancel_rollback() != ESP_OK) return false;
  read_fw_state();  // handle() re-advertises (mDNS is only touched from the serving context)
  return fw_state_ == OtterFwState::Valid;
}

bool OtterOTAClass::rollback() {
  if (active_) {
    rx_->peer_closed();
    end_session();
  }
  return esp_ota_mark_app_invalid_rollback_and_reboot() == ESP_OK;
}

// --- serving ------------------------------------------------------------------------------------------------------

void OtterOTAClass::handle() {
  if (server_ == nullptr) return;
  if (auto_confirm_s_ != 0 && fw_state_ == OtterFwState::PendingVerify &&
      millis() >= static_cast<unsigned long>(auto_confirm_s_) * 1000UL) {
    confirm();
  }
  if (readvertise_ && mdns_) advertise();
  if (!active_) {
    WiFiClient c = server_->accept();
    if (!c) return;
    start_session(c);
  } else {
    WiFiClient extra = server_->accept();
    if (extra) {
      if (draining_) {
        end_session();  // the session is over (this restarts the device if it asked for a reboot)
        start_session(extra);
      } else if (millis() - last_rx_ms_ < kTakeoverMs) {
        reject(extra);
      } else {
        rx_->peer_closed();  // the silent session is dropped (a file transfer is kept for resume)
        end_session(/*allow_reboot=*/false);
        start_session(extra);
      }
    }
  }
  pump();
}

void OtterOTAClass::reject(WiFiClient& extra) {
  static const char kMsg[] = "another push is in progress on this device";
  uint8_t frame[otter::core::kFrameHeaderSize + otter::core::kErrorFixed + sizeof kMsg];
  const size_t n =
      otter::core::encode_error(otter::ErrorCode::busy, ByteView(kMsg, sizeof kMsg - 1), frame, sizeof frame);
  extra.write(frame, n);
  extra.stop();
}

void OtterOTAClass::start_session(const WiFiClient& client) {
  client_ = client;
  active_ = true;
  last_rx_ms_ = millis();
  draining_ = false;
  in_pos_ = 0;
  in_len_ = 0;
  otter::core::ReceiverConfig cfg;
  cfg.key = ByteView(key_, key_len_);
  cfg.device_id = ByteView(device_id_, std::strlen(device_id_));
  cfg.caps =
      static_cast<uint16_t>(otter::core::caps::stat | otter::core::caps::reboot | otter::core::caps::digest_last |
                            (files_ ? otter::core::caps::file | otter::core::caps::resume : 0) |
                            (firmware_ ? otter::core::caps::firmware : 0));
  cfg.fw_state = static_cast<otter::core::FwState>(fw_state_.load());
  cfg.window = 64 * 1024;
  cfg.idle_timeout_ms = timeout_ms_;
  otter::core::ReceiverObserver* observer = this;
  rx_.emplace(cfg, *storage_, *crypto_, observer);
  rx_->start(millis());
}

void OtterOTAClass::pump() {
  const unsigned long now = millis();
  if (draining_) {
    // Read and drop until the peer closes (it has our last frame) or the linger time is over.
    uint8_t sink[64];
    size_t taken = 0;
    while (taken < kMaxBytesPerHandle) {
      const int r = client_.read(sink, sizeof sink);
      if (r <= 0) break;
      taken += static_cast<size_t>(r);
    }
    if (peer_gone(client_) || now - drain_since_ >= kLingerMs) end_session();
    return;
  }
  size_t taken = 0;
  for (;;) {
    const ByteView out = rx_->output();
    if (out.size > 0) {
      const size_t w = client_.write(out.data, out.size);
      rx_->output_consumed(w);
      if (w > 0) ++io_steps_;
      if (w < out.size) {
        if (peer_gone(client_)) {
          rx_->peer_closed();
          end_session();
        }
        return;  // the peer is slow to read: try again on the next call
      }
    }
    if (rx_->finished()) {
      begin_drain();
      return;
    }
    if (in_len_ > 0) {
      const size_t used = rx_->feed(in_ + in_pos_, in_len_, millis());
      in_pos_ += used;
      in_len_ -= used;
      if (used == 0 && rx_->output().size == 0 && !rx_->finished()) {
        rx_->peer_closed();  // cannot happen with a correct core; do not spin on it
        end_session();
        return;
      }
      continue;
    }
    if (taken >= kMaxBytesPerHandle) break;
    const int r = client_.read(in_, sizeof in_);
    if (r > 0) {
      in_pos_ = 0;
      in_len_ = static_cast<size_t>(r);
      taken += in_len_;
      ++io_steps_;
      last_rx_ms_ = millis();
      continue;
    }
    if (r < 0 || peer_gone(client_)) {
      rx_->peer_closed();
      end_session();
      return;
    }
    break;  // nothing to read now
  }
  rx_->tick(millis());
}

void OtterOTAClass::begin_drain() {
  draining_ = true;
  drain_since_ = millis();
  pump();
}

void OtterOTAClass::end_session(bool allow_reboot) {
  const bool reboot = allow_reboot && rx_ && rx_->result() == otter::ErrorCode::ok && rx_->reboot_requested();
  client_.stop();
  rx_.reset();
  active_ = false;
  draining_ = false;
  in_pos_ = 0;
  in_len_ = 0;
  if (reboot) {
    if (mdns_) MDNS.end();
    ESP.restart();
  }
}

// --- ReceiverObserver ---------------------------------------------------------------------------------------------

void OtterOTAClass::copy_name(ByteView name) {
  const size_t n = name.size < sizeof name_ - 1 ? name.size : sizeof name_ - 1;
  std::memcpy(name_, name.data, n);
  name_[n] = '\0';
}

void OtterOTAClass::on_begin(ByteView name, otter::core::Kind kind, uint64_t size, uint64_t offset) {
  copy_name(name);
  kind_ = kind == otter::core::Kind::firmware ? OtterKind::Firmware : OtterKind::File;
  if (on_start_) on_start_(name_, kind_, static_cast<size_t>(size), static_cast<size_t>(offset));
}

void OtterOTAClass::on_progress(uint64_t received, uint64_t size) {
  if (on_progress_) on_progress_(static_cast<size_t>(received), static_cast<size_t>(size));
}

void OtterOTAClass::on_committed(ByteView name, otter::core::Kind kind, bool reboot) {
  copy_name(name);
  kind_ = kind == otter::core::Kind::firmware ? OtterKind::Firmware : OtterKind::File;
  if (on_end_) on_end_(name_, kind_, reboot);
}

void OtterOTAClass::on_error(otter::ErrorCode code, const char* message) {
  if (on_error_) on_error_(static_cast<int>(code), message);
}
