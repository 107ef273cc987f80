// Host emulation of arduino-esp32's ESPmDNS: nothing goes on the network; what would be advertised is written to
// DATA/mdns.txt (rewritten on every change) so tests can check it:
//   hostname <name>
//   service _<service>._<proto> port <port>
//   txt _<service>._<proto> <key>=<value>        (one line per TXT record, in the order they were set)
// A service on port 0 (host programs run with --port 0) is recorded with the port the emulated WiFiServer bound.
// As the real one, addService() prefixes '_' when missing and a TXT key set again replaces its value.
#pragma once

#include <stdint.h>

#include "Arduino.h"

class MDNSResponder {
 public:
  bool begin(const char* hostName);
  void end();
  void setInstanceName(const char* name);
  bool addService(const char* service, const char* proto, uint16_t port);
  bool addServiceTxt(const char* name, const char* proto, const char* key, const char* value);
};

extern MDNSResponder MDNS;
