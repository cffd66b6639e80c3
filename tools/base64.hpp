// Base64 (RFC 4648, with padding) for binary payloads in JSON.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cli {

std::string base64_encode(std::string_view bytes);
// nullopt unless `text` is well-formed base64 (padding required; no whitespace).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace cli
