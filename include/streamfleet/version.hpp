#pragma once

#include <string_view>

#include "streamfleet/export.hpp"

#define STREAMFLEET_VERSION_MAJOR 0
#define STREAMFLEET_VERSION_MINOR 1
#define STREAMFLEET_VERSION_PATCH 0

namespace streamfleet {
inline namespace v1 {

/// @brief Version of the library the program runs against (may differ from the
///        headers it was compiled with when linked dynamically).
/// @return "MAJOR.MINOR.PATCH"
STREAMFLEET_API std::string_view version() noexcept;

}  // namespace v1
}  // namespace streamfleet
