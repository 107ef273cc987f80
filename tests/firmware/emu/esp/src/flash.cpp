// otter test emulation — file-backed flash (esp_partition_*), otadata, the bootloader's power-on, esp_restart().
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "chip_state.hpp"
#include "esp_app_format.h"
#include "esp_system.h"
#include "otter_emu/chip.hpp"

namespace otter_emu::detail {

Chip& chip() {
  static Chip c;
  return c;
}

Slot* slot_of(const esp_partition_t* p) {
  for (auto& s : chip().slots)
    if (p == &s.partition) return &s;
  return nullptr;
}

const char* state_name(esp_ota_img_states_t s) {
  switch (s) {
    case ESP_OTA_IMG_NEW:
      return "new";
    case ESP_OTA_IMG_PENDING_VERIFY:
      return "pending_verify";
    case ESP_OTA_IMG_VALID:
      return "valid";
    case ESP_OTA_IMG_INVALID:
      return "invalid";
    case ESP_OTA_IMG_ABORTED:
      return "aborted";
    case ESP_OTA_IMG_UNDEFINED:
      break;
  }
  return "undefined";
}

namespace {

esp_ota_img_states_t state_from(const std::string& name) {
  for (auto s :
       {ESP_OTA_IMG_NEW, ESP_OTA_IMG_PENDING_VERIFY, ESP_OTA_IMG_VALID, ESP_OTA_IMG_INVALID, ESP_OTA_IMG_ABORTED})
    if (name == state_name(s)) return s;
  return ESP_OTA_IMG_UNDEFINED;
}

std::filesystem::path otadata_path() { return chip().flash_dir / "otadata"; }

// Fills a new slot file with erased flash (0xFF).
void create_erased(const std::filesystem::path& file) {
  std::vector<char> ff(SPI_FLASH_SEC_SIZE, static_cast<char>(0xFF));
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  for (std::uint32_t i = 0; i < kSlotSize / SPI_FLASH_SEC_SIZE; ++i) out.write(ff.data(), SPI_FLASH_SEC_SIZE);
  if (!out) throw std::runtime_error("emu: cannot create " + file.string());
}

void load_otadata() {
  std::ifstream in(otadata_path());
  if (!in) throw std::runtime_error("emu: cannot read " + otadata_path().string());
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string label, state;
    std::uint32_t seq = 0;
    std::uint64_t extent = 0;
    if (!(ls >> label >> seq >> state >> extent)) continue;
    for (auto& s : chip().slots) {
      if (label != s.partition.label) continue;
      s.seq = seq;
      s.state = state_from(state);
      s.extent = extent;
    }
  }
}

std::string image_sha256(const Slot& s) {
  std::ifstream in(s.file, std::ios::binary);
  std::vector<char> buf(static_cast<std::size_t>(s.extent));
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(buf.data(), buf.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  static const char* const kDigits = "0123456789abcdef";
  for (unsigned i = 0; i < len; ++i) {
    hex += kDigits[md[i] >> 4];
    hex += kDigits[md[i] & 15];
  }
  return hex;
}

}  // namespace

void save_otadata() {
  const auto tmp = otadata_path().string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& s : chip().slots)
      out << s.partition.label << ' ' << s.seq << ' ' << state_name(s.state) << ' ' << s.extent << '\n';
    out.flush();
    if (!out) throw std::runtime_error("emu: cannot write otadata");
  }
  std::filesystem::rename(tmp, otadata_path());  // otadata is two sectors written alternately: never torn
}

std::uint8_t first_byte(const Slot& s) {
  std::uint8_t b = 0xFF;
  std::ifstream in(s.file, std::ios::binary);
  in.read(reinterpret_cast<char*>(&b), 1);
  return b;
}

}  // namespace otter_emu::detail

namespace otter_emu {

using namespace detail;

BootInfo power_on(const std::filesystem::path& data_dir) {
  Chip& c = chip();
  std::lock_guard lock(c.mu);
  c.flash_dir = data_dir / "flash";
  const char* labels[2] = {"ota_0", "ota_1"};
  for (int i = 0; i < 2; ++i) {
    Slot& s = c.slots[static_cast<std::size_t>(i)];
    s = Slot{};
    s.partition.type = ESP_PARTITION_TYPE_APP;
    s.partition.subtype = i == 0 ? ESP_PARTITION_SUBTYPE_APP_OTA_0 : ESP_PARTITION_SUBTYPE_APP_OTA_1;
    s.partition.address = 0x10000 + static_cast<std::uint32_t>(i) * kSlotSize;
    s.partition.size = kSlotSize;
    s.partition.erase_size = SPI_FLASH_SEC_SIZE;
    std::snprintf(s.partition.label, sizeof s.partition.label, "%s", labels[i]);
    s.file = c.flash_dir / (std::string(labels[i]) + ".bin");
  }

  if (!std::filesystem::exists(otadata_path())) {
    // First power-on: a factory image in ota_0, confirmed.
    std::filesystem::create_directories(c.flash_dir);
    for (auto& s : c.slots) create_erased(s.file);
    const std::string factory =
        std::string(1, static_cast<char>(ESP_IMAGE_HEADER_MAGIC)) + "otter-emu factory image\n";
    std::fstream f(c.slots[0].file, std::ios::binary | std::ios::in | std::ios::out);
    f.write(factory.data(), static_cast<std::streamsize>(factory.size()));
    c.slots[0].seq = 1;
    c.slots[0].state = ESP_OTA_IMG_VALID;
    c.slots[0].extent = factory.size();
    save_otadata();
  }
  load_otadata();

  // The bootloader: newest sequence number first.
  int order[2] = {0, 1};
  if (c.slots[1].seq > c.slots[0].seq) std::swap(order[0], order[1]);
  BootInfo info;
  c.running = -1;
  for (int i : order) {
    Slot& s = c.slots[static_cast<std::size_t>(i)];
    if (s.seq == 0 || s.state == ESP_OTA_IMG_INVALID || s.state == ESP_OTA_IMG_ABORTED) continue;
    if (first_byte(s) != ESP_IMAGE_HEADER_MAGIC) {
      s.state = ESP_OTA_IMG_INVALID;
      continue;
    }
    if (s.state == ESP_OTA_IMG_PENDING_VERIFY) {  // booted before and never confirmed: roll back
      s.state = ESP_OTA_IMG_ABORTED;
      info.rolled_back = true;
      continue;
    }
    if (s.state == ESP_OTA_IMG_NEW) s.state = ESP_OTA_IMG_PENDING_VERIFY;
    c.running = i;
    break;
  }
  save_otadata();
  if (c.running < 0) throw std::runtime_error("no bootable app");
  const Slot& r = c.slots[static_cast<std::size_t>(c.running)];
  c.powered = true;
  info.slot = r.partition.label;
  info.state = state_name(r.state);
  info.sha256 = image_sha256(r);
  std::printf("emu-boot: slot=%s state=%s sha256=%s rollback=%d\n", info.slot.c_str(), info.state.c_str(),
              info.sha256.c_str(), info.rolled_back ? 1 : 0);
  std::fflush(stdout);
  return info;
}

void set_restart_handler(std::function<void()> handler) {
  std::lock_guard lock(chip().mu);
  chip().restart = std::move(handler);
}

void restart_by_reexec(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  set_restart_handler([args] {
    std::vector<char*> cargv;
    for (const auto& a : args) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    // A reset: no descriptor (listening socket, open files) survives into the new image.
    for (int fd = 3; fd < 1024; ++fd) {
      const int flags = ::fcntl(fd, F_GETFD);
      if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    ::execv("/proc/self/exe", cargv.data());
    std::perror("emu: execv");
    std::_Exit(70);
  });
}

}  // namespace otter_emu

extern "C" void esp_restart(void) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::function<void()> handler;
  {
    std::lock_guard lock(otter_emu::detail::chip().mu);
    handler = otter_emu::detail::chip().restart;
  }
  if (handler) handler();
  std::exit(0);
}

// --- esp_partition_*
// -------------------------------------------------------------------------------------------------

extern "C" const esp_partition_t* esp_partition_find_first(esp_partition_type_t type, esp_partition_subtype_t subtype,
                                                           const char* label) {
  auto& c = otter_emu::detail::chip();
  std::lock_guard lock(c.mu);
  if (!c.powered) return nullptr;
  for (auto& s : c.slots) {
    const auto& p = s.partition;
    if (type != ESP_PARTITION_TYPE_ANY && p.type != type) continue;
    if (subtype != ESP_PARTITION_SUBTYPE_ANY && p.subtype != subtype) continue;
    if (label != nullptr && std::strcmp(label, p.label) != 0) continue;
    return &p;
  }
  return nullptr;
}

namespace {

// Opens the slot file for a range check + I/O; ESP_ERR_INVALID_ARG / ESP_ERR_INVALID_SIZE as ESP-IDF.
esp_err_t check_range(const esp_partition_t* p, std::size_t offset, std::size_t size,
                      otter_emu::detail::Slot** slot) {
  *slot = otter_emu::detail::slot_of(p);
  if (*slot == nullptr) return ESP_ERR_INVALID_ARG;
  if (offset > p->size || size > p->size - offset) return ESP_ERR_INVALID_SIZE;
  return ESP_OK;
}

}  // namespace

extern "C" esp_err_t esp_partition_read(const esp_partition_t* partition, size_t src_offset, void* dst, size_t size) {
  auto& c = otter_emu::detail::chip();
  std::lock_guard lock(c.mu);
  otter_emu::detail::Slot* s = nullptr;
  if (esp_err_t e = check_range(partition, src_offset, size, &s); e != ESP_OK) return e;
  std::ifstream in(s->file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(src_offset));
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(size));
  return in ? ESP_OK : ESP_FAIL;
}

extern "C" esp_err_t esp_partition_write(const esp_partition_t* partition, size_t dst_offset, const void* src,
                                         size_t size) {
  auto& c = otter_emu::detail::chip();
  std::lock_guard lock(c.mu);
  otter_emu::detail::Slot* s = nullptr;
  if (esp_err_t e = check_range(partition, dst_offset, size, &s); e != ESP_OK) return e;
  if (size == 0) return ESP_OK;
  std::vector<unsigned char> cur(size);
  std::fstream f(s->file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekg(static_cast<std::streamoff>(dst_offset));
  f.read(reinterpret_cast<char*>(cur.data()), static_cast<std::streamsize>(size));
  const auto* in = static_cast<const unsigned char*>(src);
  for (std::size_t i = 0; i < size; ++i) cur[i] = static_cast<unsigned char>(cur[i] & in[i]);  // NOR: 1 -> 0 only
  f.seekp(static_cast<std::streamoff>(dst_offset));
  f.write(reinterpret_cast<const char*>(cur.data()), static_cast<std::streamsize>(size));
  f.flush();
  if (!f) return ESP_FAIL;
  s->extent = std::max<std::uint64_t>(s->extent, dst_offset + size);
  return ESP_OK;
}

extern "C" esp_err_t esp_partition_erase_range(const esp_partition_t* partition, size_t offset, size_t size) {
  auto& c = otter_emu::detail::chip();
  std::lock_guard lock(c.mu);
  otter_emu::detail::Slot* s = nullptr;
  if (esp_err_t e = check_range(partition, offset, size, &s); e != ESP_OK) return e;
  if (offset % SPI_FLASH_SEC_SIZE != 0 || size % SPI_FLASH_SEC_SIZE != 0) return ESP_ERR_INVALID_SIZE;
  std::vector<char> ff(size, static_cast<char>(0xFF));
  std::fstream f(s->file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(ff.data(), static_cast<std::streamsize>(size));
  f.flush();
  if (!f) return ESP_FAIL;
  if (offset + size >= s->extent) s->extent = std::min<std::uint64_t>(s->extent, offset);
  return ESP_OK;
}
