// The host side of an emulated device (otter_host.hpp): options and what the emulations record.
#include <string>

#include "otter_host.hpp"

namespace otter_host {
namespace {

struct State {
  std::uint16_t port = 0;
  std::filesystem::path data = ".";
  std::string key;
  std::uint16_t bound_port = 0;
  bool auto_confirm_set = false;
  std::uint32_t auto_confirm = 0;
};

State& state() {
  static State s;
  return s;
}

}  // namespace

const char* key() { return state().key.c_str(); }
std::uint16_t port() { return state().port; }
const std::filesystem::path& data_dir() { return state().data; }
std::uint32_t auto_confirm_s(std::uint32_t otherwise) {
  return state().auto_confirm_set ? state().auto_confirm : otherwise;
}
std::uint16_t bound_port() { return state().bound_port; }

namespace detail {
void set_options(std::uint16_t port, const std::filesystem::path& data, const std::string& key) {
  state().port = port;
  state().data = data;
  state().key = key;
}
void set_auto_confirm(std::uint32_t seconds) {
  state().auto_confirm_set = true;
  state().auto_confirm = seconds;
}
void set_data_dir(const std::filesystem::path& dir) { state().data = dir; }
void set_bound_port(std::uint16_t port) { state().bound_port = port; }
}  // namespace detail

}  // namespace otter_host
