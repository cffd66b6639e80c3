// DoneBuckets: one server's families of finished-state buckets for one queue.
#include "server/done_buckets.hpp"

#include <algorithm>

#include "core/done_format.hpp"

namespace streamfleet::detail {

namespace {

std::uint32_t pow2_at_least(std::uint64_t n) {
    std::uint32_t s = 1;
    while (s < n && s < DoneBuckets::kMaxShards) s <<= 1;
    return s;
}

}  // namespace

DoneBuckets::DoneBuckets(std::string done_key, std::string tag)
    : done_(std::move(done_key)), tag_(std::move(tag)) {}

void DoneBuckets::add(redis::Block& b, std::string_view id, std::string_view value,
                      std::int64_t retention_ms, std::int64_t now_ms) {
    auto& f = family(b, retention_ms, now_ms);
    ++f.count;
    const auto shard = done::shard_hash(id) & (f.shards - 1);
    const auto key = done::bucket_key(done_, f.member, shard);
    b.add({"HSET", key, id, value});
    if (!f.expiring[shard]) {
        // After the HSET: PEXPIREAT of a key not there yet does nothing.
        f.expiring[shard] = true;
        b.add({"PEXPIREAT", key, std::to_string(f.expires_ms)});
    }
}

DoneBuckets::Family& DoneBuckets::family(redis::Block& b, std::int64_t retention_ms,
                                         std::int64_t now_ms) {
    auto [it, fresh] = by_retention_.try_emplace(retention_ms);
    auto& f = it->second;
    if (fresh) {
        // A retention not seen for a while: forget the families of those since closed.
        std::erase_if(by_retention_, [&](const auto& kv) {
            return kv.first != retention_ms && kv.second.closes_ms < now_ms;
        });
        open(f, 1, retention_ms, now_ms);
    } else if (f.count >= std::uint64_t{kFill} * f.shards) {
        open(f, std::min(f.shards * 2, kMaxShards), retention_ms, now_ms);
    } else if (now_ms >= f.closes_ms || now_ms < f.opened_ms) {
        open(f, pow2_at_least((f.count + kFill - 1) / kFill), retention_ms, now_ms);
    } else if (now_ms - f.armed_ms >= kRearmMs) {
        f.armed_ms = now_ms;
        std::fill(f.expiring.begin(), f.expiring.end(), false);
    }
    if (!f.announced) {
        f.announced = true;
        b.add({"ZADD", done_, std::to_string(f.expires_ms), f.member});
    }
    return f;
}

void DoneBuckets::open(Family& f, std::uint32_t shards,
                       std::int64_t retention_ms, std::int64_t now_ms) {
    const auto width = std::max<std::int64_t>(1000, retention_ms / 24);
    f.member = done::member({tag_, seq_++, shards, retention_ms});
    f.shards = shards;
    f.opened_ms = f.armed_ms = now_ms;
    f.closes_ms = now_ms + width;
    // Its last state is due to go at closes + retention; a second more for the reader's clock.
    f.expires_ms = f.closes_ms + retention_ms + 1000;
    f.count = 0;
    f.announced = false;
    f.expiring.assign(shards, false);
}

}  // namespace streamfleet::detail
