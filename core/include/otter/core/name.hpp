// otter — target name validation (docs/protocol.md section 5).
#pragma once

#include "otter/core/bytes.hpp"
#include "otter/core/error.hpp"

namespace otter::core {

/// Ok if `name` is a valid relative target name; otherwise BAD_NAME with a static message saying which rule broke.
/// Property: an accepted name, joined to a root with '/', never resolves outside that root.
Result<void> validate_name(ByteView name);

}  // namespace otter::core
