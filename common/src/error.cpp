#include "otter/common/error.hpp"

#include <fmt/format.h>

namespace otter {

std::string Error::to_string() const {
  return fmt::format("{} ({}): {}", error_name(code), static_cast<unsigned>(code), message);
}

}  // namespace otter
