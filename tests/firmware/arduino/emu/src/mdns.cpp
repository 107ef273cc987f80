// Host emulation: ESPmDNS records what would be advertised in DATA/mdns.txt (see ESPmDNS.h).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "ESPmDNS.h"
#include "otter_host.hpp"

namespace {

struct Txt {
  std::string service;
  std::string key;
  std::string value;
};

struct State {
  bool running = false;
  std::string hostname;
  std::string instance;
  std::vector<std::pair<std::string, uint16_t>> services;
  std::vector<Txt> txt;
};

State& state() {
  static State s;
  return s;
}

std::string service_name(const char* service, const char* proto) {
  std::string s = service[0] == '_' ? service : std::string("_") + service;
  s += '.';
  s += proto[0] == '_' ? proto : std::string("_") + proto;
  return s;
}

void save() {
  const auto file = otter_host::data_dir() / "mdns.txt";
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    const State& s = state();
    if (s.running) {
      out << "hostname " << s.hostname << "\n";
      if (!s.instance.empty()) out << "instance " << s.instance << "\n";
      for (const auto& [name, port] : s.services) out << "service " << name << " port " << port << "\n";
      for (const auto& t : s.txt) out << "txt " << t.service << " " << t.key << "=" << t.value << "\n";
    }
  }
  std::rename(tmp.c_str(), file.c_str());
}

}  // namespace

bool MDNSResponder::begin(const char* hostName) {
  if (hostName == nullptr || hostName[0] == '\0') return false;
  state() = State{};
  state().running = true;
  state().hostname = hostName;
  save();
  return true;
}

void MDNSResponder::end() {
  state() = State{};
  save();
}

void MDNSResponder::setInstanceName(const char* name) {
  state().instance = name != nullptr ? name : "";
  save();
}

bool MDNSResponder::addService(const char* service, const char* proto, uint16_t port) {
  if (!state().running) return false;
  // Port 0 only happens on the host (an ephemeral port): record the port the emulated server actually bound.
  state().services.emplace_back(service_name(service, proto), port != 0 ? port : otter_host::bound_port());
  save();
  return true;
}

bool MDNSResponder::addServiceTxt(const char* name, const char* proto, const char* key, const char* value) {
  if (!state().running) return false;
  const std::string svc = service_name(name, proto);
  bool found = false;
  for (const auto& s : state().services) found = found || s.first == svc;
  if (!found) return false;
  for (auto& t : state().txt) {
    if (t.service == svc && t.key == key) {
      t.value = value;
      save();
      return true;
    }
  }
  state().txt.push_back({svc, key, value});
  save();
  return true;
}

MDNSResponder MDNS;
