// build/bin/taskmode-host: the TaskMode example, compiled unchanged against the host emulations (OtterOTA serves from
// an emulated FreeRTOS task, a thread). The key and port come from the command line (otter_host.hpp).
#include "Arduino.h"
#include "otter_host.hpp"

#define OTTER_KEY otter_host::key()
#define OTTER_PORT otter_host::port()
#include "TaskMode.ino"
