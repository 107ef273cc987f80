// otter test emulation — host-side settings of the ESP-IDF emulations in tests/firmware/esp-idf/emu (set by the host
// program's main before app_main runs).
#pragma once

#include <filesystem>

namespace otter_idf_emu {

/// DATA: NVS lives in DATA/nvs/.
void set_data_dir(const std::filesystem::path& data_dir);
[[nodiscard]] const std::filesystem::path& data_dir();

}  // namespace otter_idf_emu
