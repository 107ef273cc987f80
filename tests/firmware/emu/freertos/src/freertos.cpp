// Host emulation of FreeRTOS as ESP-IDF and arduino-esp32 use it: tasks are threads on painted stacks (so
// uxTaskGetStackHighWaterMark measures real use), binary semaphores are a mutex + condition variable + flag, ticks
// count from process start. Shared by the Arduino library's and the ESP-IDF component's host builds.
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"

namespace {
const auto kBoot = std::chrono::steady_clock::now();
}  // namespace

struct otter_emu_task {
  std::string name;
  uint32_t stack_depth = 0;
  unsigned char* stack = nullptr;  // painted with kPaint (nullptr for the main task: not measured)
  std::size_t stack_size = 0;
  const unsigned char* entry_sp = nullptr;  // the stack pointer when the task function was entered
  TaskFunction_t code = nullptr;
  void* parameters = nullptr;
};

namespace {
constexpr std::size_t kTaskStack = 256 * 1024;
constexpr unsigned char kPaint = 0xA5;
thread_local otter_emu_task* t_current = nullptr;
otter_emu_task g_main_task{"main", 3584};  // app_main's task (CONFIG_ESP_MAIN_TASK_STACK_SIZE default)

std::mutex g_tasks_mu;
// A task's stack cannot be freed by the task itself: kept, reachable, never destroyed (no exit-time destructor, so
// LeakSanitizer still sees them referenced).
auto* const g_dead_stacks = new std::vector<unsigned char*>;

void free_task(otter_emu_task* task) {
  {
    std::lock_guard lk(g_tasks_mu);
    g_dead_stacks->push_back(task->stack);
  }
  delete task;
}

void* task_entry(void* arg) {
  auto* task = static_cast<otter_emu_task*>(arg);
  t_current = task;
  unsigned char marker = 0;
  task->entry_sp = &marker;
  task->code(task->parameters);
  // A FreeRTOS task must not return; the emulation tolerates it (the thread just ends).
  std::fprintf(stderr, "E (freertos) task '%s' returned from its function\n", task->name.c_str());
  t_current = nullptr;
  free_task(task);
  return nullptr;
}
}  // namespace

extern "C" BaseType_t xTaskCreate(TaskFunction_t code, const char* name, uint32_t stack_depth, void* parameters,
                                  UBaseType_t /*priority*/, TaskHandle_t* created_task) {
  auto* task = new (std::nothrow) otter_emu_task{name != nullptr ? name : "", stack_depth};
  if (task == nullptr) return pdFAIL;
  task->code = code;
  task->parameters = parameters;
  task->stack_size = kTaskStack;
  task->stack = static_cast<unsigned char*>(std::aligned_alloc(4096, kTaskStack));
  if (task->stack == nullptr) {
    delete task;
    return pdFAIL;
  }
  std::memset(task->stack, kPaint, kTaskStack);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, task->stack, kTaskStack);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread;
  const int rc = pthread_create(&thread, &attr, task_entry, task);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    std::free(task->stack);
    delete task;
    return pdFAIL;
  }
  if (created_task != nullptr) *created_task = task;
  return pdPASS;
}

extern "C" __attribute__((no_sanitize("address"))) UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t task) {
  otter_emu_task* t = task != nullptr ? task : t_current;
  if (t == nullptr || t->stack == nullptr || t->entry_sp == nullptr) return 0;
  std::size_t untouched = 0;
  while (untouched < t->stack_size && t->stack[untouched] == kPaint) ++untouched;
  const auto used = static_cast<std::size_t>(t->entry_sp - (t->stack + untouched));
  return used >= t->stack_depth ? 0 : static_cast<UBaseType_t>(t->stack_depth - used);
}

extern "C" void vTaskDelete(TaskHandle_t task) {
  if (task != nullptr && task != t_current) {
    std::fprintf(stderr, "E (freertos) vTaskDelete of another task is not emulated\n");
    std::abort();
  }
  otter_emu_task* self = t_current;
  t_current = nullptr;
  if (self != nullptr) free_task(self);
  pthread_exit(nullptr);
}

extern "C" void vTaskDelay(TickType_t ticks) {
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<std::int64_t>(ticks) * portTICK_PERIOD_MS));
}

extern "C" TaskHandle_t xTaskGetCurrentTaskHandle(void) { return t_current != nullptr ? t_current : &g_main_task; }

extern "C" TickType_t xTaskGetTickCount(void) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - kBoot);
  return static_cast<TickType_t>(ms.count() / portTICK_PERIOD_MS);
}

struct otter_emu_semaphore {
  std::mutex mu;
  std::condition_variable cv;
  bool given = false;
};

extern "C" SemaphoreHandle_t xSemaphoreCreateBinary(void) { return new (std::nothrow) otter_emu_semaphore; }

extern "C" BaseType_t xSemaphoreGive(SemaphoreHandle_t sem) {
  std::lock_guard lk(sem->mu);
  if (sem->given) return pdFALSE;
  sem->given = true;
  sem->cv.notify_all();  // under the lock: the taker may delete the semaphore as soon as it is released
  return pdTRUE;
}

extern "C" BaseType_t xSemaphoreTake(SemaphoreHandle_t sem, TickType_t ticks) {
  std::unique_lock lk(sem->mu);
  auto ready = [sem] { return sem->given; };
  if (ticks == portMAX_DELAY) {
    sem->cv.wait(lk, ready);
  } else if (!sem->cv.wait_for(lk, std::chrono::milliseconds(static_cast<std::int64_t>(ticks) * portTICK_PERIOD_MS),
                               ready)) {
    return pdFALSE;
  }
  sem->given = false;
  return pdTRUE;
}

extern "C" void vSemaphoreDelete(SemaphoreHandle_t sem) { delete sem; }
