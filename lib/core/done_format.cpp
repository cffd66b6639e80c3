// The format of finished-state buckets, shared by their writers and readers.
#include "core/done_format.hpp"

#include <algorithm>

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
