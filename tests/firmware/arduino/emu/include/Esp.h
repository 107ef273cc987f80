// Host emulation of arduino-esp32's EspClass (Esp.h): restart, heap figures and the raw partition accessors the
// Update library uses, over the shared esp_partition_* emulation.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_partition.h"
#include "esp_system.h"

class EspClass {
 public:
  /// esp_restart(): the emulation re-executes the program (same command line, same data directory).
  [[noreturn]] void restart() { esp_restart(); }
  uint32_t getFreeHeap();
  uint32_t getHeapSize();
  bool partitionEraseRange(const esp_partition_t* partition, uint32_t offset, size_t size);
  bool partitionWrite(const esp_partition_t* partition, uint32_t offset, uint32_t* data, size_t size);
  bool partitionRead(const esp_partition_t* partition, uint32_t offset, uint32_t* data, size_t size);
};

extern EspClass ESP;
