// Host emulation of the Arduino core for ESP32 (arduino-esp32): the subset OtterOTA and its examples use.
//
// millis()/micros() count from the emulated power-on (process start; an emulated restart re-executes the process, so
// uptime starts again at 0). delay() sleeps. Serial writes to stderr: stdout carries the lines tests parse
// ("emu-boot: ...", "<program>: device ... listening on ...").
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#include "Esp.h"
// As arduino-esp32's Arduino.h: FreeRTOS is always there (the shared emulation in tests/firmware/emu/freertos).
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"

#define HIGH 0x1
#define LOW 0x0

typedef bool boolean;
typedef uint8_t byte;

unsigned long millis();
unsigned long micros();
void delay(uint32_t ms);
void yield();

/// Arduino's Print: write() is the primitive; print/println/printf format into it.
class Print {
 public:
  virtual ~Print() = default;
  virtual size_t write(uint8_t c) = 0;
  virtual size_t write(const uint8_t* buffer, size_t size);
  size_t write(const char* s) { return s == nullptr ? 0 : write(reinterpret_cast<const uint8_t*>(s), strlen(s)); }
  size_t print(const char* s) { return write(s); }
  size_t print(char c) { return write(static_cast<uint8_t>(c)); }
  size_t print(long n);
  size_t print(unsigned long n);
  size_t print(int n) { return print(static_cast<long>(n)); }
  size_t print(unsigned int n) { return print(static_cast<unsigned long>(n)); }
  size_t println() { return write("\r\n"); }
  template <class T>
  size_t println(T v) {
    const size_t n = print(v);
    return n + println();
  }
  size_t printf(const char* format, ...) __attribute__((format(printf, 2, 3)));
};

/// The UART console, on the host: stderr, line by line.
class HardwareSerial : public Print {
 public:
  void begin(unsigned long baud) { (void)baud; }
  void end() {}
  explicit operator bool() const { return true; }
  using Print::write;
  size_t write(uint8_t c) override;
  size_t write(const uint8_t* buffer, size_t size) override;
};

extern HardwareSerial Serial;
