#include "core/uuid.hpp"

namespace streamfleet::detail {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

UuidV7Generator::UuidV7Generator(const Clock& clock)
    : clock_(clock), rng_(std::random_device{}()) {}

std::string UuidV7Generator::next() {
    std::uint64_t ms;
    std::uint32_t counter;
    std::uint64_t tail;
    {
        std::lock_guard lock(mutex_);
        auto now = clock_.now_ms();
        if (now > last_ms_) {
            last_ms_ = now;
            // Seed below the midpoint so a burst has room to count up.
            counter_ = static_cast<std::uint32_t>(rng_() & 0x7ff);
        } else if (++counter_ > 0xfff) {
            // Counter exhausted within one millisecond (or the clock went
            // back): borrow the next millisecond to stay monotonic.
            ++last_ms_;
            counter_ = static_cast<std::uint32_t>(rng_() & 0x7ff);
        }
        ms = static_cast<std::uint64_t>(last_ms_);
        counter = counter_;
        tail = rng_();
    }
    unsigned char b[16];
    for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
    b[6] = static_cast<unsigned char>(0x70 | ((counter >> 8) & 0x0f));
    b[7] = static_cast<unsigned char>(counter & 0xff);
    for (int i = 0; i < 8; ++i) b[8 + i] = static_cast<unsigned char>(tail >> (56 - 8 * i));
    b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));  // RFC variant 10xx

    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kHex[b[i] >> 4]);
        out.push_back(kHex[b[i] & 15]);
    }
    return out;
}

std::string new_uuid_v7() {
    static UuidV7Generator generator;
    return generator.next();
}

bool is_uuid_v7(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (hex_digit(s[i]) < 0) {
            return false;
        }
    }
    return s[14] == '7' && (hex_digit(s[19]) & 0xc) == 0x8;
}

std::int64_t uuid_v7_ms(std::string_view s) noexcept {
    if (!is_uuid_v7(s)) return 0;
    std::int64_t ms = 0;
    for (std::size_t i = 0; i < 13; ++i) {
        if (i == 8) continue;
        ms = ms * 16 + hex_digit(s[i]);
    }
    return ms;
}

}  // namespace streamfleet::detail
