// Host emulation of FreeRTOS binary semaphores (semphr.h): a mutex, a condition variable and a flag.
#pragma once

#include "freertos/FreeRTOS.h"

typedef struct otter_emu_semaphore* SemaphoreHandle_t;

#ifdef __cplusplus
extern "C" {
#endif

SemaphoreHandle_t xSemaphoreCreateBinary(void);
BaseType_t xSemaphoreGive(SemaphoreHandle_t sem);
/// pdTRUE if taken within `ticks` (portMAX_DELAY = forever).
BaseType_t xSemaphoreTake(SemaphoreHandle_t sem, TickType_t ticks);
void vSemaphoreDelete(SemaphoreHandle_t sem);

#ifdef __cplusplus
}
#endif
