#include "streamfleet/version.hpp"

namespace streamfleet {
inline namespace v1 {

std::string_view version() noexcept { return STREAMFLEET_VERSION_STRING; }

}  // namespace v1
}  // namespace streamfleet
