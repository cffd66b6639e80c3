#pragma once

// Cluster hash slots: CRC16 (XMODEM) of the key's hash tag, modulo 16384, as
// Redis Cluster computes them. Free of I/O, so it is testable alone.

#include <cstdint>
#include <string_view>

namespace streamfleet::detail::redis {

inline constexpr std::uint16_t kSlots = 16384;

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
std::uint16_t crc16(std::string_view data) noexcept;

/// The part of `key` that is hashed: the text between the first '{' and the
/// next '}' when that is non-empty, else the whole key.
std::string_view hash_tag(std::string_view key) noexcept;

/// The slot of `key`.
inline std::uint16_t key_slot(std::string_view key) noexcept {
    return static_cast<std::uint16_t>(crc16(hash_tag(key)) % kSlots);
}

}  // namespace streamfleet::detail::redis
