// otter fuzzing — a property check that reports and aborts (libFuzzer records the input as a crash).
#pragma once

#include <cstdio>
#include <cstdlib>

#define OTTER_FUZZ_CHECK(cond)                                                                        \
  do {                                                                                                \
    if (!(cond)) {                                                                                    \
      std::fprintf(stderr, "otter fuzz property violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                                   \
    }                                                                                                 \
  } while (0)
