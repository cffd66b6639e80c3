// JSON output; byte-for-byte what scripts have parsed so far.
#include "json.hpp"

#include <cstdint>
#include <cstdio>

namespace cli {

bool valid_utf8(std::string_view s) {
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 0;
        if (n == 0 || i + n >= s.size()) return false;
        std::uint32_t cp = c & (0x3fU >> n);
        for (std::size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 0x2) return false;
            cp = (cp << 6) | (cc & 0x3fU);
        }
        if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

std::string json_str(std::string_view s) {
    const bool utf8 = valid_utf8(s);
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

JsonObject& JsonObject::str(std::string_view key, std::string_view value) {
    return raw(key, json_str(value));
}

JsonObject& JsonObject::num(std::string_view key, long long value) {
    return raw(key, std::to_string(value));
}

JsonObject& JsonObject::raw(std::string_view key, std::string_view json) {
    if (!body_.empty()) body_ += ',';
    body_ += json_str(key);
    body_ += ':';
    body_ += json;
    return *this;
}

JsonArray& JsonArray::str(std::string_view value) {
    if (!body_.empty()) body_ += ',';
    body_ += json_str(value);
    return *this;
}

}  // namespace cli
