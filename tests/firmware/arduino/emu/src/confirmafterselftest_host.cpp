// build/bin/confirmafterselftest-host: the ConfirmAfterSelfTest example, compiled unchanged against the host
// emulations (see basicota_host.cpp).
#include "Arduino.h"
#include "otter_host.hpp"

#define OTTER_KEY otter_host::key()
#define OTTER_PORT otter_host::port()
#include "ConfirmAfterSelfTest.ino"
