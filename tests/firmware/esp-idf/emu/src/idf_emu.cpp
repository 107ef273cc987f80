// Host emulations of the ESP-IDF / lwIP APIs the otter component and its example use (beyond the shared chip and
// FreeRTOS emulations in tests/firmware/emu/). Small on purpose: real threads, real sockets, real files.
#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "esp_event.h"
#include "esp_heap_caps.h"
#include "esp_littlefs.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "nvs_flash.h"
#include "otter_idf_emu/host.hpp"
#include "protocol_examples_common.h"

namespace fs = std::filesystem;

namespace {

const auto kBoot = std::chrono::steady_clock::now();

std::mutex g_mu;
fs::path g_data_dir = ".";
bool g_nvs_ready = false;
bool g_event_loop = false;
std::map<std::string, fs::path> g_littlefs;  // partition label -> host directory

}  // namespace

namespace otter_idf_emu {

void set_data_dir(const fs::path& data_dir) {
  std::lock_guard lk(g_mu);
  g_data_dir = data_dir;
}

const fs::path& data_dir() { return g_data_dir; }

}  // namespace otter_idf_emu

// --- esp_timer.h / esp_log.h ---------------------------------------------------------------------------------------

extern "C" int64_t esp_timer_get_time(void) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - kBoot).count();
}

extern "C" uint32_t esp_log_timestamp(void) { return static_cast<uint32_t>(esp_timer_get_time() / 1000); }

namespace {
std::atomic<int> g_log_level{ESP_LOG_INFO};
}

extern "C" void esp_log_level_set(const char* /*tag*/, esp_log_level_t level) { g_log_level.store(level); }

extern "C" void otter_emu_log(esp_log_level_t level, const char* tag, const char* format, ...) {
  if (static_cast<int>(level) > g_log_level.load()) return;
  static constexpr char kLetters[] = "NEWIDV";
  char line[1024];
  int n = std::snprintf(line, sizeof line, "%c (%u) %s: ", kLetters[level],
                        static_cast<unsigned>(esp_log_timestamp()), tag);
  if (n < 0) return;
  std::va_list ap;
  va_start(ap, format);
  const int m = std::vsnprintf(line + n, sizeof line - static_cast<std::size_t>(n) - 1, format, ap);
  va_end(ap);
  if (m > 0) n = std::min<int>(n + m, static_cast<int>(sizeof line) - 2);
  line[n++] = '\n';
  // One write per line: lines of concurrent tasks never interleave.
  const ssize_t w = ::write(STDERR_FILENO, line, static_cast<std::size_t>(n));
  (void)w;
}

// --- esp_random.h / esp_mac.h / esp_heap_caps.h ------------------------------------------------------------------

extern "C" void esp_fill_random(void* buf, size_t len) {
  auto* p = static_cast<unsigned char*>(buf);
  while (len > 0) {
    const ssize_t r = ::getrandom(p, len, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::abort();  // the hardware RNG cannot fail; neither may its emulation silently
    }
    p += r;
    len -= static_cast<std::size_t>(r);
  }
}

extern "C" uint32_t esp_random(void) {
  uint32_t v = 0;
  esp_fill_random(&v, sizeof v);
  return v;
}

extern "C" esp_err_t esp_read_mac(uint8_t* mac, esp_mac_type_t type) {
  if (mac == nullptr) return ESP_ERR_INVALID_ARG;
  static constexpr uint8_t kBase[6] = {0x24, 0x0a, 0xc4, 0x00, 0x1d, 0x01};
  std::memcpy(mac, kBase, sizeof kBase);
  mac[5] = static_cast<uint8_t>(mac[5] + static_cast<int>(type));
  return ESP_OK;
}

extern "C" size_t heap_caps_get_free_size(uint32_t /*caps*/) { return 180 * 1024; }

// --- esp_netif.h / esp_event.h / protocol_examples_common.h ------------------------------------------------------

extern "C" esp_err_t esp_netif_init(void) { return ESP_OK; }

extern "C" esp_err_t esp_event_loop_create_default(void) {
  std::lock_guard lk(g_mu);
  if (g_event_loop) return ESP_ERR_INVALID_STATE;
  g_event_loop = true;
  return ESP_OK;
}

extern "C" esp_err_t example_connect(void) {
  {
    std::lock_guard lk(g_mu);
    if (!g_event_loop) return ESP_ERR_INVALID_STATE;  // as on the chip: the default loop must exist
  }
  ESP_LOGI("example_connect", "host emulation: network is the host's loopback (no Wi-Fi)");
  return ESP_OK;
}

extern "C" esp_err_t example_disconnect(void) { return ESP_OK; }

// --- esp_littlefs.h ----------------------------------------------------------------------------------------------

extern "C" esp_err_t esp_vfs_littlefs_register(const esp_vfs_littlefs_conf_t* conf) {
  if (conf == nullptr || conf->base_path == nullptr) return ESP_ERR_INVALID_ARG;
  const std::string label = conf->partition_label != nullptr ? conf->partition_label : "littlefs";
  std::lock_guard lk(g_mu);
  if (g_littlefs.count(label) != 0) return ESP_ERR_INVALID_STATE;
  std::error_code ec;
  fs::create_directories(conf->base_path, ec);
  if (ec || !fs::is_directory(conf->base_path)) return ESP_FAIL;
  g_littlefs[label] = conf->base_path;
  return ESP_OK;
}

extern "C" esp_err_t esp_vfs_littlefs_unregister(const char* partition_label) {
  std::lock_guard lk(g_mu);
  return g_littlefs.erase(partition_label != nullptr ? partition_label : "littlefs") != 0 ? ESP_OK
                                                                                          : ESP_ERR_INVALID_STATE;
}

extern "C" esp_err_t esp_littlefs_info(const char* partition_label, size_t* total_bytes, size_t* used_bytes) {
  fs::path root;
  {
    std::lock_guard lk(g_mu);
    const auto it = g_littlefs.find(partition_label != nullptr ? partition_label : "littlefs");
    if (it == g_littlefs.end()) return ESP_ERR_INVALID_STATE;
    root = it->second;
  }
  std::uintmax_t used = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) used += it->file_size(e2);
  }
  if (total_bytes != nullptr) *total_bytes = OTTER_EMU_LITTLEFS_SIZE;
  if (used_bytes != nullptr)
    *used_bytes = static_cast<size_t>(std::min<std::uintmax_t>(used, OTTER_EMU_LITTLEFS_SIZE));
  return ESP_OK;
}

// --- nvs.h / nvs_flash.h -----------------------------------------------------------------------------------------

namespace {

std::map<nvs_handle_t, std::pair<std::string, nvs_open_mode_t>> g_nvs_handles;
nvs_handle_t g_nvs_next = 1;

bool valid_nvs_name(const char* s) {
  return s != nullptr && s[0] != '\0' && std::strlen(s) <= 15 && !std::strchr(s, '/');
}

fs::path nvs_dir() { return g_data_dir / "nvs"; }

esp_err_t nvs_read(nvs_handle_t h, const char* key, const char* type, std::string& value) {
  std::lock_guard lk(g_mu);
  const auto it = g_nvs_handles.find(h);
  if (it == g_nvs_handles.end()) return ESP_ERR_NVS_INVALID_HANDLE;
  if (!valid_nvs_name(key)) return ESP_ERR_NVS_INVALID_NAME;
  const fs::path p = nvs_dir() / it->second.first / key;
  std::ifstream t(p.string() + ".type");
  std::string stored_type;
  if (!(t >> stored_type)) return ESP_ERR_NVS_NOT_FOUND;
  if (stored_type != type) return ESP_ERR_NVS_TYPE_MISMATCH;
  std::ifstream in(p, std::ios::binary);
  if (!in) return ESP_ERR_NVS_NOT_FOUND;
  value.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return ESP_OK;
}

esp_err_t nvs_write(nvs_handle_t h, const char* key, const char* type, const void* data, std::size_t n) {
  std::lock_guard lk(g_mu);
  const auto it = g_nvs_handles.find(h);
  if (it == g_nvs_handles.end()) return ESP_ERR_NVS_INVALID_HANDLE;
  if (it->second.second != NVS_READWRITE) return ESP_ERR_NVS_READ_ONLY;
  if (!valid_nvs_name(key)) return ESP_ERR_NVS_INVALID_NAME;
  const fs::path dir = nvs_dir() / it->second.first;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream out(dir / key, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  std::ofstream t((dir / key).string() + ".type", std::ios::trunc);
  t << type << "\n";
  return out && t ? ESP_OK : ESP_FAIL;
}

}  // namespace

extern "C" esp_err_t nvs_flash_init(void) {
  std::lock_guard lk(g_mu);
  std::error_code ec;
  fs::create_directories(nvs_dir(), ec);
  if (ec) return ESP_FAIL;
  g_nvs_ready = true;
  return ESP_OK;
}

extern "C" esp_err_t nvs_flash_erase(void) {
  std::lock_guard lk(g_mu);
  std::error_code ec;
  fs::remove_all(nvs_dir(), ec);
  g_nvs_ready = false;
  return ec ? ESP_FAIL : ESP_OK;
}

extern "C" esp_err_t nvs_open(const char* namespace_name, nvs_open_mode_t open_mode, nvs_handle_t* out_handle) {
  std::lock_guard lk(g_mu);
  if (!g_nvs_ready) return ESP_ERR_NVS_NOT_INITIALIZED;
  if (!valid_nvs_name(namespace_name) || out_handle == nullptr) return ESP_ERR_NVS_INVALID_NAME;
  if (open_mode == NVS_READONLY && !fs::is_directory(nvs_dir() / namespace_name)) return ESP_ERR_NVS_NOT_FOUND;
  const nvs_handle_t h = g_nvs_next++;
  g_nvs_handles[h] = {namespace_name, open_mode};
  *out_handle = h;
  return ESP_OK;
}

extern "C" void nvs_close(nvs_handle_t handle) {
  std::lock_guard lk(g_mu);
  g_nvs_handles.erase(handle);
}

extern "C" esp_err_t nvs_get_str(nvs_handle_t handle, const char* key, char* out_value, size_t* length) {
  if (length == nullptr) return ESP_ERR_INVALID_ARG;
  std::string v;
  const esp_err_t err = nvs_read(handle, key, "str", v);
  if (err != ESP_OK) return err;
  if (out_value == nullptr) {
    *length = v.size() + 1;
    return ESP_OK;
  }
  if (*length < v.size() + 1) return ESP_ERR_NVS_INVALID_LENGTH;
  std::memcpy(out_value, v.c_str(), v.size() + 1);
  *length = v.size() + 1;
  return ESP_OK;
}

extern "C" esp_err_t nvs_get_blob(nvs_handle_t handle, const char* key, void* out_value, size_t* length) {
  if (length == nullptr) return ESP_ERR_INVALID_ARG;
  std::string v;
  const esp_err_t err = nvs_read(handle, key, "blob", v);
  if (err != ESP_OK) return err;
  if (out_value == nullptr) {
    *length = v.size();
    return ESP_OK;
  }
  if (*length < v.size()) return ESP_ERR_NVS_INVALID_LENGTH;
  std::memcpy(out_value, v.data(), v.size());
  *length = v.size();
  return ESP_OK;
}

extern "C" esp_err_t nvs_set_str(nvs_handle_t handle, const char* key, const char* value) {
  if (value == nullptr) return ESP_ERR_INVALID_ARG;
  return nvs_write(handle, key, "str", value, std::strlen(value));
}

extern "C" esp_err_t nvs_set_blob(nvs_handle_t handle, const char* key, const void* value, size_t length) {
  if (value == nullptr && length != 0) return ESP_ERR_INVALID_ARG;
  return nvs_write(handle, key, "blob", value, length);
}

extern "C" esp_err_t nvs_commit(nvs_handle_t handle) {
  std::lock_guard lk(g_mu);
  return g_nvs_handles.count(handle) != 0 ? ESP_OK : ESP_ERR_NVS_INVALID_HANDLE;
}
