#pragma once

// Stream entry ids ("ms-seq") in order: as strings "10-0" sorts before "9-0". The Lua twin is
// ack.lua's, which compares the ids it is sent in this order.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <utility>

namespace streamfleet::detail {

/// "ms-seq" as two numbers (an unparsable part reads as 0).
inline std::pair<std::uint64_t, std::uint64_t> stream_id(std::string_view id) noexcept {
    std::uint64_t ms = 0, seq = 0;
    auto dash = id.find('-');
    std::from_chars(id.data(), id.data() + std::min(dash, id.size()), ms);
    if (dash != std::string_view::npos)
        std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
    return {ms, seq};
}

inline bool stream_id_less(std::string_view a, std::string_view b) noexcept {
    return stream_id(a) < stream_id(b);
}

}  // namespace streamfleet::detail
