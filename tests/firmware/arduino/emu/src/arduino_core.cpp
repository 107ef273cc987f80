// Host emulation: Arduino timing, Print, Serial, ESP.
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <thread>
#include <vector>

#include "Arduino.h"
#include "esp_partition.h"
#include "esp_system.h"

namespace {
const auto kPowerOn = std::chrono::steady_clock::now();
}

unsigned long millis() {
  return static_cast<unsigned long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - kPowerOn).count());
}

unsigned long micros() {
  return static_cast<unsigned long>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - kPowerOn).count());
}

void delay(uint32_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void yield() { std::this_thread::yield(); }

size_t Print::write(const uint8_t* buffer, size_t size) {
  size_t n = 0;
  while (n < size && write(buffer[n]) == 1) ++n;
  return n;
}

size_t Print::print(long n) {
  char buf[24];
  const int len = std::snprintf(buf, sizeof buf, "%ld", n);
  return write(reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(len));
}

size_t Print::print(unsigned long n) {
  char buf[24];
  const int len = std::snprintf(buf, sizeof buf, "%lu", n);
  return write(reinterpret_cast<const uint8_t*>(buf), static_cast<size_t>(len));
}

size_t Print::printf(const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  va_list copy;
  va_copy(copy, ap);
  const int len = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (len <= 0) {
    va_end(ap);
    return 0;
  }
  std::vector<char> buf(static_cast<size_t>(len) + 1);
  std::vsnprintf(buf.data(), buf.size(), format, ap);
  va_end(ap);
  return write(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(len));
}

size_t HardwareSerial::write(uint8_t c) { return write(&c, 1); }

size_t HardwareSerial::write(const uint8_t* buffer, size_t size) {
  const size_t n = std::fwrite(buffer, 1, size, stderr);
  std::fflush(stderr);
  return n;
}

HardwareSerial Serial;

// --- ESP --------------------------------------------------------------------------------------------------------

uint32_t EspClass::getFreeHeap() { return 200 * 1024; }  // a typical ESP32 after WiFi start
uint32_t EspClass::getHeapSize() { return 300 * 1024; }

bool EspClass::partitionEraseRange(const esp_partition_t* partition, uint32_t offset, size_t size) {
  return esp_partition_erase_range(partition, offset, size) == ESP_OK;
}

bool EspClass::partitionWrite(const esp_partition_t* partition, uint32_t offset, uint32_t* data, size_t size) {
  return esp_partition_write(partition, offset, data, size) == ESP_OK;
}

bool EspClass::partitionRead(const esp_partition_t* partition, uint32_t offset, uint32_t* data, size_t size) {
  return esp_partition_read(partition, offset, data, size) == ESP_OK;
}

EspClass ESP;
