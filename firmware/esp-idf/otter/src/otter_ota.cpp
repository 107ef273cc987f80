// otter ESP-IDF component — the server: one FreeRTOS task, one listening lwIP socket (BSD API), one session at a time
// driving the core's Receiver; the public C API of otter_ota.h.
#include "otter_ota.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>

#include "esp_crypto.hpp"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_ota_ops.h"
#include "esp_storage.hpp"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/sockets.h"
#include "otter/core/codec.hpp"
#include "otter/core/receiver.hpp"
#if defined(CONFIG_OTTER_KEY_SOURCE_NVS)
#include "nvs.h"
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

namespace {

using otter::ErrorCode;
namespace core = otter::core;

constexpr const char* kTag = "otter";
constexpr std::size_t kMinKey = 16;
constexpr std::size_t kMaxKey = 128;
constexpr std::uint32_t kPollMs = 200;     // how often the task looks at the stop flag, timers and auto-confirm
constexpr std::uint64_t kLingerMs = 1000;  // after the last frame: wait for the peer to close first
constexpr std::uint64_t kMinProgressStep = std::uint64_t{16} * 1024;

std::uint64_t now_ms() { return static_cast<std::uint64_t>(esp_timer_get_time() / 1000); }

/// Trims ASCII whitespace at both ends (as the CLI's key file reader does).
std::size_t trim(const char*& s, std::size_t n) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (n > 0 && space(*s)) ++s, --n;
  while (n > 0 && space(s[n - 1])) --n;
  return n;
}

/// Loads the key from the Kconfig key source into out (kMaxKey bytes). ESP_ERR_NOT_FOUND if there is none.
esp_err_t load_key(std::uint8_t* out, std::size_t* len) {
  char raw[kMaxKey + 64] = {};
  std::size_t n = 0;
#if defined(CONFIG_OTTER_KEY_SOURCE_KCONFIG)
  n = std::strlen(CONFIG_OTTER_KEY);
  if (n >= sizeof raw) return ESP_ERR_INVALID_ARG;
  std::memcpy(raw, CONFIG_OTTER_KEY, n);
#elif defined(CONFIG_OTTER_KEY_SOURCE_FILE)
  const int fd = ::open(CONFIG_OTTER_KEY_FILE, O_RDONLY);
  if (fd < 0) {
    ESP_LOGE(kTag, "key file %s: %s", CONFIG_OTTER_KEY_FILE, std::strerror(errno));
    return ESP_ERR_NOT_FOUND;
  }
  for (;;) {
    const ssize_t r = ::read(fd, raw + n, sizeof raw - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += static_cast<std::size_t>(r);
    if (n == sizeof raw - 1) break;
  }
  ::close(fd);
#elif defined(CONFIG_OTTER_KEY_SOURCE_NVS)
  nvs_handle_t h = 0;
  esp_err_t err = nvs_open(CONFIG_OTTER_NVS_NAMESPACE, NVS_READONLY, &h);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "NVS namespace '%s': %s", CONFIG_OTTER_NVS_NAMESPACE, esp_err_to_name(err));
    return ESP_ERR_NOT_FOUND;
  }
  std::size_t size = sizeof raw;
  err = nvs_get_str(h, CONFIG_OTTER_NVS_KEY, raw, &size);  // size includes the terminator
  if (err == ESP_OK) {
    n = size > 0 ? size - 1 : 0;
  } else {
    size = sizeof raw - 1;
    err = nvs_get_blob(h, CONFIG_OTTER_NVS_KEY, raw, &size);
    n = size;
  }
  nvs_close(h);
  if (err != ESP_OK) {
    ESP_LOGE(kTag, "NVS key '%s/%s': %s", CONFIG_OTTER_NVS_NAMESPACE, CONFIG_OTTER_NVS_KEY, esp_err_to_name(err));
    return err == ESP_ERR_NVS_INVALID_LENGTH ? ESP_ERR_INVALID_ARG : ESP_ERR_NOT_FOUND;
  }
#else
#error "choose a key source (CONFIG_OTTER_KEY_SOURCE_*)"
#endif
  const char* s = raw;
  n = trim(s, n);
  if (n == 0) return ESP_ERR_NOT_FOUND;
  if (n > kMaxKey) return ESP_ERR_INVALID_ARG;
  std::memcpy(out, s, n);
  *len = n;
  return ESP_OK;
}

const char* kind_name(core::Kind k) { return k == core::Kind::firmware ? "firmware" : "file"; }

class Server final : public core::ReceiverObserver {
 public:
  Server(const otter_ota_config_t& cfg, const char* base_path)
      : storage_(base_path, cfg.free_space_cb, cfg.free_space_ctx), config_(cfg) {
    config_.key = nullptr;
    config_.device_id = nullptr;
    config_.base_path = nullptr;
  }
  ~Server() { delete[] buf_; }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  esp_err_t init(const std::uint8_t* key, std::size_t key_len, const char* id, bool files);
  esp_err_t listen_on(std::uint16_t port);
  void run();  // the task body
  [[nodiscard]] std::uint32_t idle_timeout_ms() const { return config_.idle_timeout_ms; }

  std::atomic<bool> stop_{false};
  TaskHandle_t task_ = nullptr;
  SemaphoreHandle_t done_ = nullptr;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;

  // ReceiverObserver
  void on_begin(core::ByteView name, core::Kind kind, std::uint64_t size, std::uint64_t offset) override;
  void on_progress(std::uint64_t received, std::uint64_t size) override;
  void on_committed(core::ByteView name, core::Kind kind, bool reboot) override;
  void on_error(ErrorCode code, const char* message) override;

 private:
  void serve(int fd);
  bool flush(int fd);
  void linger(int fd);
  void reject_busy();
  void maybe_auto_confirm();
  void emit(otter_ota_event_t& e) {
    if (config_.event_cb != nullptr) config_.event_cb(&e, config_.event_ctx);
  }
  void set_name(core::ByteView name) {
    const std::size_t n = name.size < core::kMaxNameLen ? name.size : core::kMaxNameLen;
    std::memcpy(name_, name.data, n);
    name_[n] = '\0';
  }

  otter::esp::EspCrypto crypto_;
  otter::esp::EspStorage storage_;
  otter_ota_config_t config_;
  std::uint8_t key_[kMaxKey] = {};
  std::size_t key_len_ = 0;
  char id_[core::kMaxIdLen + 1] = {};
  core::ReceiverConfig rx_cfg_;
  std::optional<core::Receiver> rx_;
  std::uint8_t* buf_ = nullptr;
  bool confirmed_checked_ = false;

  // The current transfer, for events.
  char name_[core::kMaxNameLen + 1] = {};
  core::Kind kind_ = core::Kind::file;
  std::uint64_t size_ = 0;
  std::uint64_t next_progress_ = 0;
  bool in_transfer_ = false;
};

Server* g_server = nullptr;

esp_err_t Server::init(const std::uint8_t* key, std::size_t key_len, const char* id, bool files) {
  std::memcpy(key_, key, key_len);
  key_len_ = key_len;
  std::strcpy(id_, id);
  buf_ = new (std::nothrow) std::uint8_t[config_.buffer_size];
  if (buf_ == nullptr) return ESP_ERR_NO_MEM;
  rx_cfg_.key = core::ByteView(key_, key_len_);
  rx_cfg_.device_id = core::ByteView(id_, std::strlen(id_));
  rx_cfg_.caps = static_cast<std::uint16_t>(core::caps::stat | core::caps::reboot | core::caps::digest_last |
                                            (files ? core::caps::file | core::caps::resume : 0) |
                                            (config_.accept_firmware ? core::caps::firmware : 0));
  rx_cfg_.window = config_.window;
  rx_cfg_.max_size = config_.max_size;
  rx_cfg_.idle_timeout_ms = config_.idle_timeout_ms;
  return ESP_OK;
}

esp_err_t Server::listen_on(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (fd < 0) {
    ESP_LOGE(kTag, "socket: %s", std::strerror(errno));
    return ESP_FAIL;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // rebinding right after a restart
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 2) != 0) {
    ESP_LOGE(kTag, "cannot listen on port %u: %s", static_cast<unsigned>(port), std::strerror(errno));
    ::close(fd);
    return ESP_FAIL;
  }
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&addr), &len) == 0) port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  ESP_LOGD(kTag, "memory: server state %u bytes (receiver %u) + buffer %u bytes + task stack %u bytes",
           static_cast<unsigned>(sizeof(Server)), static_cast<unsigned>(sizeof(core::Receiver)),
           static_cast<unsigned>(config_.buffer_size), static_cast<unsigned>(config_.task_stack_size));
  ESP_LOGI(kTag, "device %s listening on port %u (caps 0x%02x, window %" PRIu32 ", buffer %" PRIu32 ")", id_,
           static_cast<unsigned>(port_), static_cast<unsigned>(rx_cfg_.caps), config_.window, config_.buffer_size);
  otter_ota_event_t e{};
  e.id = OTTER_OTA_EVENT_LISTENING;
  e.name = "";
  e.port = port_;
  e.device_id = id_;
  emit(e);
  return ESP_OK;
}

void Server::maybe_auto_confirm() {
  if (config_.auto_confirm_s == 0 || confirmed_checked_) return;
  if (esp_timer_get_time() < static_cast<std::int64_t>(config_.auto_confirm_s) * 1000000) return;
  confirmed_checked_ = true;
  if (otter_ota_get_fw_state() == OTTER_OTA_FW_PENDING_VERIFY) {
    ESP_LOGI(kTag, "auto-confirm: the image ran %" PRIu32 " s, marking it valid", config_.auto_confirm_s);
    otter_ota_confirm();
  }
}

void Server::run() {
  while (!stop_.load()) {
    maybe_auto_confirm();
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(listen_fd_, &rd);
    struct timeval tv {};
    tv.tv_usec = static_cast<long>(kPollMs) * 1000;
    const int r = ::select(listen_fd_ + 1, &rd, nullptr, nullptr, &tv);
    if (r <= 0 || !FD_ISSET(listen_fd_, &rd)) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) {
      ESP_LOGW(kTag, "accept: %s", std::strerror(errno));
      vTaskDelay(pdMS_TO_TICKS(100));
      continue;
    }
    serve(fd);
  }
  ::close(listen_fd_);
  listen_fd_ = -1;
}

bool Server::flush(int fd) {
  for (;;) {
    const core::ByteView out = rx_->output();
    if (out.empty()) return true;
    const ssize_t n = ::send(fd, out.data, out.size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // error, or no progress for SO_SNDTIMEO (the idle timeout)
    rx_->output_consumed(static_cast<std::size_t>(n));
  }
}

void Server::reject_busy() {
  const int fd = ::accept(listen_fd_, nullptr, nullptr);
  if (fd < 0) return;
  static constexpr char kMsg[] = "the device serves one session at a time";
  std::uint8_t frame[core::kFrameHeaderSize + core::kErrorFixed + sizeof kMsg];
  const std::size_t n =
      core::encode_error(ErrorCode::busy, core::ByteView(kMsg, sizeof kMsg - 1), frame, sizeof frame);
  ::send(fd, frame, n, MSG_DONTWAIT | MSG_NOSIGNAL);  // best effort: a fresh socket's buffer takes it
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  ESP_LOGI(kTag, "second connection refused (BUSY)");
}

void Server::linger(int fd) {
  if (::shutdown(fd, SHUT_WR) != 0) return;
  const std::uint64_t deadline = now_ms() + kLingerMs;
  for (;;) {
    const std::uint64_t now = now_ms();
    if (now >= deadline) return;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    struct timeval tv {};
    tv.tv_usec = static_cast<long>((deadline - now) * 1000);
    if (::select(fd + 1, &rd, nullptr, nullptr, &tv) <= 0) return;
    if (::recv(fd, buf_, config_.buffer_size, 0) <= 0) return;  // EOF: the peer has read everything
  }
}

void Server::serve(int fd) {
  struct timeval tv {};
  tv.tv_sec = static_cast<long>(config_.idle_timeout_ms / 1000);
  tv.tv_usec = static_cast<long>((config_.idle_timeout_ms % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  rx_cfg_.fw_state = static_cast<core::FwState>(otter_ota_get_fw_state());
  in_transfer_ = false;
  rx_.emplace(rx_cfg_, storage_, crypto_, this);
  core::Receiver& rx = *rx_;
  rx.start(now_ms());
  std::size_t pos = 0;
  std::size_t len = 0;
  bool alive = true;  // the connection still works (linger before closing it)
  for (;;) {
    if (!flush(fd)) {
      rx.peer_closed();
      alive = false;
      break;
    }
    if (rx.finished()) break;
    if (stop_.load()) {
      rx.peer_closed();  // suspends an open transfer
      alive = false;
      break;
    }
    if (len > 0) {
      const std::size_t used = rx.feed(buf_ + pos, len, now_ms());
      pos += used;
      len -= used;
      if (used == 0 && rx.output().empty() && !rx.finished()) {
        ESP_LOGE(kTag, "receiver consumed nothing and has nothing to say; closing");
        rx.peer_closed();
        break;
      }
      continue;
    }
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    FD_SET(listen_fd_, &rd);
    struct timeval wait {};
    wait.tv_usec = static_cast<long>(kPollMs) * 1000;
    const int r = ::select((fd > listen_fd_ ? fd : listen_fd_) + 1, &rd, nullptr, nullptr, &wait);
    if (r < 0 && errno != EINTR) {
      rx.peer_closed();
      alive = false;
      break;
    }
    if (r > 0 && FD_ISSET(listen_fd_, &rd)) reject_busy();
    if (r > 0 && FD_ISSET(fd, &rd)) {
      const ssize_t n = ::recv(fd, buf_, config_.buffer_size, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n <= 0) {
        rx.peer_closed();  // EOF or reset: a file's partial copy is kept for resume; a firmware update is aborted
        alive = false;
        break;
      }
      pos = 0;
      len = static_cast<std::size_t>(n);
      continue;
    }
    rx.tick(now_ms());
    maybe_auto_confirm();
  }

  const bool reboot = rx.result() == ErrorCode::ok && rx.reboot_requested();
  if (alive) linger(fd);
  ::close(fd);
  rx_.reset();
  ESP_LOGD(kTag, "session over; task stack never used: %u bytes",
           static_cast<unsigned>(uxTaskGetStackHighWaterMark(nullptr)));
  if (reboot) {
    ESP_LOGW(kTag, "restarting into the new firmware");
    ::close(listen_fd_);
    listen_fd_ = -1;
    esp_restart();
  }
}

void Server::on_begin(core::ByteView name, core::Kind kind, std::uint64_t size, std::uint64_t offset) {
  set_name(name);
  kind_ = kind;
  size_ = size;
  in_transfer_ = true;
  const std::uint64_t step = size / 64 > kMinProgressStep ? size / 64 : kMinProgressStep;
  next_progress_ = offset + step;
  ESP_LOGI(kTag, "push %s '%s' size %" PRIu64 " from offset %" PRIu64, kind_name(kind), name_, size, offset);
  otter_ota_event_t e{};
  e.id = OTTER_OTA_EVENT_START;
  e.kind = static_cast<otter_ota_kind_t>(kind);
  e.name = name_;
  e.size = size;
  e.received = offset;
  emit(e);
}

void Server::on_progress(std::uint64_t received, std::uint64_t size) {
  if (received < next_progress_ && received != size) return;
  const std::uint64_t step = size / 64 > kMinProgressStep ? size / 64 : kMinProgressStep;
  next_progress_ = received + step;
  otter_ota_event_t e{};
  e.id = OTTER_OTA_EVENT_PROGRESS;
  e.kind = static_cast<otter_ota_kind_t>(kind_);
  e.name = name_;
  e.size = size;
  e.received = received;
  emit(e);
}

void Server::on_committed(core::ByteView name, core::Kind kind, bool reboot) {
  set_name(name);
  in_transfer_ = false;
  ESP_LOGI(kTag, "committed %s '%s' (%" PRIu64 " bytes)%s", kind_name(kind), name_, size_,
           reboot ? ", rebooting" : "");
  otter_ota_event_t e{};
  e.id = OTTER_OTA_EVENT_END;
  e.kind = static_cast<otter_ota_kind_t>(kind);
  e.name = name_;
  e.size = size_;
  e.received = size_;
  e.reboot = reboot;
  emit(e);
}

void Server::on_error(ErrorCode code, const char* message) {
  ESP_LOGW(kTag, "session ended: %s (%u): %s", otter::error_name(code), static_cast<unsigned>(code), message);
  otter_ota_event_t e{};
  e.id = OTTER_OTA_EVENT_ERROR;
  e.kind = static_cast<otter_ota_kind_t>(kind_);
  e.name = in_transfer_ ? name_ : "";
  e.size = size_;
  e.received = rx_ ? rx_->received() : 0;
  e.error = static_cast<int>(code);
  e.error_name = otter::error_name(code);
  e.message = message;
  emit(e);
  in_transfer_ = false;
}

void task_main(void* arg) {
  auto* server = static_cast<Server*>(arg);
  server->run();
  xSemaphoreGive(server->done_);  // otter_ota_stop() frees the server; nothing touches it after this line
  vTaskDelete(nullptr);
}

bool valid_id(const char* id) {
  const std::size_t n = std::strlen(id);
  if (n == 0 || n > core::kMaxIdLen) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (id[i] < 0x20 || id[i] > 0x7E) return false;
  }
  return true;
}

}  // namespace

extern "C" esp_err_t otter_ota_start(const otter_ota_config_t* config) {
  if (config == nullptr) return ESP_ERR_INVALID_ARG;
  if (g_server != nullptr) return ESP_ERR_INVALID_STATE;
  const bool files = config->base_path != nullptr && config->base_path[0] != '\0';
  if (files && std::strlen(config->base_path) > otter::esp::EspStorage::kMaxBasePath) return ESP_ERR_INVALID_ARG;
  if (!files && !config->accept_firmware) return ESP_ERR_INVALID_ARG;
  if (config->buffer_size < 512 || config->window < core::kMinWindow || config->idle_timeout_ms == 0 ||
      config->task_stack_size < 2048) {
    return ESP_ERR_INVALID_ARG;
  }

  std::uint8_t key[kMaxKey];
  std::size_t key_len = 0;
  if (config->key != nullptr) {
    if (config->key_len < kMinKey || config->key_len > kMaxKey) return ESP_ERR_INVALID_ARG;
    std::memcpy(key, config->key, config->key_len);
    key_len = config->key_len;
  } else {
    const esp_err_t err = load_key(key, &key_len);
    if (err != ESP_OK) return err;
    if (key_len < kMinKey) {
      ESP_LOGE(kTag, "the configured key is %u bytes; at least %u are required", static_cast<unsigned>(key_len),
               static_cast<unsigned>(kMinKey));
      return ESP_ERR_INVALID_ARG;
    }
  }

  char id[core::kMaxIdLen + 1] = {};
  if (config->device_id != nullptr) {
    if (std::strlen(config->device_id) > core::kMaxIdLen) return ESP_ERR_INVALID_ARG;
    std::strcpy(id, config->device_id);
  } else if (CONFIG_OTTER_DEVICE_ID[0] != '\0') {
    std::snprintf(id, sizeof id, "%s", CONFIG_OTTER_DEVICE_ID);
  } else {
    std::uint8_t mac[6] = {};
    esp_read_mac(mac, ESP_MAC_WIFI_STA);
    std::snprintf(id, sizeof id, "esp32-%02x%02x%02x%02x%02x%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  }
  if (!valid_id(id)) return ESP_ERR_INVALID_ARG;

  auto* server = new (std::nothrow) Server(*config, files ? config->base_path : "");
  if (server == nullptr) return ESP_ERR_NO_MEM;
  esp_err_t err = server->init(key, key_len, id, files);
  std::memset(key, 0, sizeof key);
  if (err == ESP_OK) {
    server->done_ = xSemaphoreCreateBinary();
    if (server->done_ == nullptr) err = ESP_ERR_NO_MEM;
  }
  if (err == ESP_OK) err = server->listen_on(config->port);
  if (err == ESP_OK) {
    g_server = server;
    if (xTaskCreate(task_main, "otter", config->task_stack_size, server, config->task_priority, &server->task_) !=
        pdPASS) {
      g_server = nullptr;
      ::close(server->listen_fd_);
      err = ESP_ERR_NO_MEM;
    }
  }
  if (err != ESP_OK) {
    if (server->done_ != nullptr) vSemaphoreDelete(server->done_);
    delete server;
    return err;
  }
  return ESP_OK;
}

extern "C" esp_err_t otter_ota_stop(void) {
  Server* server = g_server;
  if (server == nullptr) return ESP_ERR_INVALID_STATE;
  if (xTaskGetCurrentTaskHandle() == server->task_) return ESP_ERR_INVALID_STATE;
  server->stop_.store(true);
  // The task notices within kPollMs, or after a blocked send() gives up (SO_SNDTIMEO = the idle timeout).
  if (xSemaphoreTake(server->done_, pdMS_TO_TICKS(server->idle_timeout_ms() + 2000)) != pdTRUE) {
    return ESP_ERR_TIMEOUT;
  }
  g_server = nullptr;
  vSemaphoreDelete(server->done_);
  delete server;
  ESP_LOGI(kTag, "stopped");
  return ESP_OK;
}

extern "C" otter_ota_fw_state_t otter_ota_get_fw_state(void) {
  const esp_partition_t* running = esp_ota_get_running_partition();
  if (running == nullptr) return OTTER_OTA_FW_UNKNOWN;
  esp_ota_img_states_t state = ESP_OTA_IMG_UNDEFINED;
  if (esp_ota_get_state_partition(running, &state) == ESP_OK && state == ESP_OTA_IMG_PENDING_VERIFY) {
    return OTTER_OTA_FW_PENDING_VERIFY;
  }
  return OTTER_OTA_FW_VALID;  // VALID, or no OTA state to speak of (factory app, rollback disabled)
}

extern "C" esp_err_t otter_ota_confirm(void) {
  if (otter_ota_get_fw_state() != OTTER_OTA_FW_PENDING_VERIFY) return ESP_OK;
  const esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
  if (err == ESP_OK) {
    ESP_LOGI(kTag, "firmware confirmed: the running image stays after a reset");
  } else {
    ESP_LOGE(kTag, "esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
  }
  return err;
}

extern "C" esp_err_t otter_ota_rollback(void) {
  ESP_LOGW(kTag, "rejecting the running image: rolling back");
  return esp_ota_mark_app_invalid_rollback_and_reboot();
}

extern "C" uint16_t otter_ota_get_port(void) {
  Server* server = g_server;
  return server != nullptr ? server->port_ : 0;
}
