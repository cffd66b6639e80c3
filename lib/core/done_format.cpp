// The format of finished-state buckets, shared by their writers and readers.
#include "core/done_format.hpp"

#include <algorithm>
#include <cstdint>

namespace streamfleet::detail::done {

namespace {

constexpr std::string_view kDigits = "0123456789abcdefghijklmnopqrstuvwxyz";

void append_base36(std::string& out, std::int64_t v) {
    char buf[16];
    int n = 0;
    auto u = static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0));
    do {
        buf[n++] = kDigits[u % 36];
        u /= 36;
    } while (u != 0);
    while (n > 0) out.push_back(buf[--n]);
}

struct Letter {
    char c;
    std::string_view state;
};
constexpr Letter kLetters[] = {{'c', "completed"}, {'e', "expired"}, {'x', "canceled"}};

}  // namespace

std::uint32_t shard_hash(std::string_view id) noexcept {
    std::uint32_t h = 0;
    for (unsigned char b : id) h = (h * 31 + b) & 0xFFFFFFu;
    return h;
}

std::string member(const Family& f) {
    return f.tag + "." + std::to_string(f.seq) + "." + std::to_string(f.shards) + "." +
           std::to_string(f.retention_ms);
}

std::optional<Family> parse_member(std::string_view m) {
    // TAG.SEQ.SHARDS.RETENTION: the tag has no '.', so the last three fields are the numbers.
    auto number = [&m](std::uint64_t max) -> std::optional<std::uint64_t> {
        auto dot = m.rfind('.');
        if (dot == std::string_view::npos) return std::nullopt;
        auto digits = m.substr(dot + 1);
        m = m.substr(0, dot);
        std::uint64_t v = 0;
        if (digits.empty() || digits.size() > 19) return std::nullopt;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        if (v > max) return std::nullopt;
        return v;
    };
    auto retention = number(static_cast<std::uint64_t>(INT64_MAX));
    auto shards = number(UINT32_MAX);
    auto seq = number(UINT64_MAX);
    if (!retention || !shards || !seq || *shards == 0 || m.empty()) return std::nullopt;
    return Family{std::string(m), *seq, static_cast<std::uint32_t>(*shards),
                  static_cast<std::int64_t>(*retention)};
}

std::string bucket_key(std::string_view done_key, std::string_view member, std::uint32_t shard) {
    std::string k;
    k.reserve(done_key.size() + member.size() + 8);
    k.append(done_key).append(":").append(member).append(":").append(std::to_string(shard));
    return k;
}

std::string encode_state(std::string_view state, std::int64_t finished_ms,
                         std::int64_t created_ms, std::uint32_t retries) {
    std::string v;
    v.reserve(24);
    char letter = '?';
    for (const auto& l : kLetters) {
        if (l.state == state) letter = l.c;
    }
    v.push_back(letter);
    append_base36(v, finished_ms);
    v.push_back(',');
    // A client's clock ahead of the server's would make it negative: created is then taken as
    // the finish time.
    append_base36(v, finished_ms - std::min(created_ms, finished_ms));
    if (retries > 0) v.append(",").append(std::to_string(retries));
    return v;
}

}  // namespace streamfleet::detail::done
