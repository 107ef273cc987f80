// build/bin/basicota-host: the BasicOTA example, compiled unchanged against the host emulations. As the Arduino
// build does, Arduino.h comes first; the key and port come from the command line (otter_host.hpp).
#include "Arduino.h"
#include "otter_host.hpp"

#define OTTER_KEY otter_host::key()
#define OTTER_PORT otter_host::port()
#define OTTER_AUTO_CONFIRM_S otter_host::auto_confirm_s(30)
#include "BasicOTA.ino"
