# CMake toolchain: a 32-bit microcontroller (Arm Cortex-M3, Thumb-2, no FPU) with Debian's gcc-arm-none-eabi,
# picolibc and libstdc++-arm-none-eabi-picolibc. Programs do I/O and exit through semihosting (picolibc's
# libsemihost, crt0-semihost), which qemu-system-arm -M mps2-an385 and debug probes provide.
#
#   cmake -S tests/mcu -B build/mcu -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-none-eabi-picolibc.cmake
#
# The memory map is the linker's business (picolibcpp.ld with --defsym=__flash/__ram/...): see tests/mcu.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar CACHE FILEPATH "")
set(CMAKE_RANLIB arm-none-eabi-ranlib CACHE FILEPATH "")
set(CMAKE_OBJCOPY arm-none-eabi-objcopy CACHE FILEPATH "")
set(CMAKE_SIZE arm-none-eabi-size CACHE FILEPATH "")

# No OS to run a test program on during configuration: check the compilers by building a static library.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(OTTER_MCU_CPU_FLAGS "-mcpu=cortex-m3 -mthumb")
set(CMAKE_C_FLAGS_INIT "${OTTER_MCU_CPU_FLAGS} --specs=picolibc.specs -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${OTTER_MCU_CPU_FLAGS} --specs=picolibcpp.specs -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${OTTER_MCU_CPU_FLAGS}")
# picolibcpp.specs links with picolibcpp.ld and --gc-sections; crt0-semihost passes the semihosting command line
# to main() and exit() hands the status to the host.
set(CMAKE_EXE_LINKER_FLAGS_INIT "--oslib=semihost --crt0=semihost")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
