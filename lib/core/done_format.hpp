#pragma once

// Finished states kept for their retention in shared buckets instead of one
// expiring hash per task: the format both sides share, the servers that write
// the buckets (server/done_buckets.hpp) and the scripts that read them
// (lib/scripts/lib/done.lua, whose Lua twin of shard_hash must agree bit for bit).
//
// A server writes into families of buckets. A family is `shards` hashes
//   P{Q}:done:<member>:<shard>      field = task id, value = encode_state()
// named by its member "<tag>.<seq>.<shards>.<retention ms>" in the zset
// P{Q}:done, scored by when its buckets expire. A task's bucket in a family is
// shard_hash(id) % shards. Families stay small enough per bucket for Redis's
// compact hash encoding (listpack, up to 128 fields by default), where a field
// costs its id and a few bytes of value; a field of a large hash costs ~100
// bytes more.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace streamfleet::detail::done {

/// (h * 31 + byte) mod 2^24 over the id's bytes: exact in Lua's doubles.
std::uint32_t shard_hash(std::string_view id) noexcept;

struct Family {
    std::string tag;  // the writer's, no '.'
    std::uint64_t seq = 0;
    std::uint32_t shards = 1;  // a power of two
    std::int64_t retention_ms = 0;
};
std::string member(const Family& f);
/// The family a member names, or nullopt when it is not one of member()'s.
std::optional<Family> parse_member(std::string_view m);
std::string bucket_key(std::string_view done_key, std::string_view member, std::uint32_t shard);

/// The state letter (c completed, e expired, x canceled), the finished time
/// in base 36, ',' and finished - created in base 36, then ',' and retries when
/// there were any.
std::string encode_state(std::string_view state, std::int64_t finished_ms,
                         std::int64_t created_ms, std::uint32_t retries);

}  // namespace streamfleet::detail::done
