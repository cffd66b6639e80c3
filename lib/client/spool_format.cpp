// Spool format: framing and parsing of spool records (see spool_format.hpp).

#include "client/spool_format.hpp"

#include <array>

namespace streamfleet::detail::spool {

namespace {

constexpr std::string_view kMagic{"SFr1", 4};

constexpr std::array<std::uint32_t, 256> make_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr auto kTable = make_table();

std::uint32_t load_u32(const char* p) noexcept {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
    return v;
}

void store_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// The checksum covers the length and the kind too: a length bent by damage must not make a
// shorter or longer record look whole.
std::uint32_t record_crc(std::string_view len_bytes, char kind, std::string_view body) noexcept {
    auto crc = crc32c(len_bytes);
    crc = crc32c(std::string_view(&kind, 1), crc);
    return crc32c(body, crc);
}

// The good record at `pos`, and where the next one starts; 0 when there is none.
std::size_t record_at(std::string_view data, std::size_t pos, Record& out) noexcept {
    if (data.size() - pos < kHeaderSize || data.substr(pos, 4) != kMagic) return 0;
    std::uint32_t len = load_u32(data.data() + pos + 4);
    if (len > data.size() - pos - kHeaderSize) return 0;
    char kind = data[pos + 8];
    std::uint32_t crc = load_u32(data.data() + pos + 9);
    auto body = data.substr(pos + kHeaderSize, len);
    if (record_crc(data.substr(pos + 4, 4), kind, body) != crc) return 0;
    out = Record{kind, body};
    return pos + kHeaderSize + len;
}

// Older versions: u32 length of (kind + body) | kind | body, nothing to check; stops at the
// first record that does not fit.
Parsed parse_legacy(std::string_view data) {
    Parsed p;
    p.legacy = true;
    std::size_t pos = 0;
    while (data.size() - pos >= 5) {
        std::uint32_t len = load_u32(data.data() + pos);
        if (len == 0 || len > data.size() - pos - 4) break;
        p.records.push_back(Record{data[pos + 4], data.substr(pos + 5, len - 1)});
        pos += 4 + len;
    }
    p.torn_tail = data.size() - pos;
    return p;
}

}  // namespace

std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc) noexcept {
    crc = ~crc;
    for (char ch : bytes) crc = kTable[(crc ^ static_cast<unsigned char>(ch)) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void append_record(std::string& out, char kind, std::string_view body) {
    out.reserve(out.size() + kHeaderSize + body.size());
    out.append(kMagic);
    auto len_at = out.size();
    store_u32(out, static_cast<std::uint32_t>(body.size()));
    out.push_back(kind);
    store_u32(out, record_crc(std::string_view(out).substr(len_at, 4), kind, body));
    out.append(body);
}

Parsed parse(std::string_view data) {
    Parsed p;
    std::size_t pos = 0;
    while (pos < data.size()) {
        Record r;
        if (auto next = record_at(data, pos, r)) {
            p.records.push_back(r);
            pos = next;
            continue;
        }
        // Damage: resume at the next magic that starts a good record. A payload may contain the
        // magic; the checksum is what tells a record from such bytes.
        std::size_t from = pos + 1, found = 0;
        while ((from = data.find(kMagic, from)) != std::string_view::npos) {
            if (record_at(data, from, r)) {
                found = from;
                break;
            }
            ++from;
        }
        if (found == 0) break;
        ++p.damaged;
        p.damaged_bytes += found - pos;
        pos = found;
    }
    p.torn_tail = data.size() - pos;
    if (p.records.empty() && !data.empty()) {
        auto legacy = parse_legacy(data);
        if (!legacy.records.empty()) return legacy;
    }
    return p;
}

}  // namespace streamfleet::detail::spool
