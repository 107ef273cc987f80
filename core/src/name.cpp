#include "otter/core/name.hpp"

#include "otter/core/codec.hpp"

namespace otter::core {

Result<void> validate_name(ByteView name) {
  if (name.size == 0) return fail(ErrorCode::bad_name, "name is empty");
  if (name.size > kMaxNameLen) return fail(ErrorCode::bad_name, "name is longer than 255 bytes");
  if (name.data[0] == '/') return fail(ErrorCode::bad_name, "name is an absolute path");
  std::size_t seg_start = 0;
  for (std::size_t i = 0; i <= name.size; ++i) {
    if (i < name.size) {
      const std::uint8_t c = name.data[i];
      if (c == 0) return fail(ErrorCode::bad_name, "name contains a NUL byte");
      if (c < 0x20 || c == 0x7F) return fail(ErrorCode::bad_name, "name contains a control character");
      if (c == '\\') return fail(ErrorCode::bad_name, "name contains a backslash");
      if (c != '/') continue;
    }
    // [seg_start, i) is a segment.
    const std::size_t len = i - seg_start;
    const std::uint8_t* s = name.data + seg_start;
    if (len == 0) return fail(ErrorCode::bad_name, "name has an empty segment");
    if (len == 1 && s[0] == '.') return fail(ErrorCode::bad_name, "name has a '.' segment");
    if (len == 2 && s[0] == '.' && s[1] == '.') return fail(ErrorCode::bad_name, "name has a '..' segment");
    if (seg_start == 0 && len == 6 && s[0] == '.' && s[1] == 'o' && s[2] == 't' && s[3] == 't' && s[4] == 'e' &&
        s[5] == 'r')
      return fail(ErrorCode::bad_name, "name starts with the reserved segment '.otter'");
    seg_start = i + 1;
  }
  return {};
}

}  // namespace otter::core
