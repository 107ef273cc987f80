// Host emulation of FreeRTOS tasks (ESP-IDF flavour: stack depth in bytes): a task is a detached thread on a painted
// 256 KiB stack (the host's frames differ from Xtensa's: the requested depth is recorded, not enforced), so that
// uxTaskGetStackHighWaterMark measures the task's real use on the host. Priorities are ignored.
#pragma once

#include <stdint.h>

#include "freertos/FreeRTOS.h"

typedef struct otter_emu_task* TaskHandle_t;
typedef void (*TaskFunction_t)(void*);

#ifdef __cplusplus
extern "C" {
#endif

BaseType_t xTaskCreate(TaskFunction_t code, const char* name, uint32_t stack_depth, void* parameters,
                       UBaseType_t priority, TaskHandle_t* created_task);
/// NULL = the calling task, which then ends (its thread exits). Deleting another task is not emulated.
void vTaskDelete(TaskHandle_t task);
void vTaskDelay(TickType_t ticks);
TaskHandle_t xTaskGetCurrentTaskHandle(void);
TickType_t xTaskGetTickCount(void);
/// Bytes of the task's requested stack depth never used so far (NULL = the calling task), as ESP-IDF reports it. On
/// the host: requested depth minus the deepest use measured from the task function's entry (0 if it used more).
UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t task);

#ifdef __cplusplus
}
#endif
