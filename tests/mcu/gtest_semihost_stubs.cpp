// otter — the three POSIX file-system calls GoogleTest links against that picolibc's semihosting layer does not
// provide (it has open/read/write/close/lseek, which is all the tests themselves use). GoogleTest calls them only
// for --gtest_output=xml:DIR/ (stat, mkdir) and for absolute paths in failure reports (getcwd); on the emulated board
// they fail with ENOSYS, and the XML report is not used. Test images only.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>

extern "C" {

int stat(const char* /*path*/, struct stat* /*st*/) {
  errno = ENOSYS;
  return -1;
}

int mkdir(const char* /*path*/, mode_t /*mode*/) {
  errno = ENOSYS;
  return -1;
}

char* getcwd(char* /*buf*/, std::size_t /*size*/) {
  errno = ENOSYS;
  return nullptr;
}

}  // extern "C"
