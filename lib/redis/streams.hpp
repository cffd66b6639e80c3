#pragma once

// Reading stream replies and creating consumer groups: the pieces every stream
// consumer (the client's notification listener, the server's reader) needs.

#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "redis/reply.hpp"
#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

/// One stream entry, viewing into the Reply it came from.
struct StreamEntry {
    std::string_view id;
    std::vector<std::pair<std::string_view, std::string_view>> fields;
};

/// Parses one `[id, [field, value, ...]]` entry; nullopt when the shape is wrong.
/// A field or value that is not a string is skipped (never a crash).
std::optional<StreamEntry> parse_entry(const Reply& entry);

/// Calls `fn(stream, entry)` for every well-formed entry of an XREAD/XREADGROUP
/// reply (`[[stream, [entry, ...]], ...]`, or nil on timeout); returns how many
/// entries the reply held, well-formed or not.
std::size_t for_each_entry(const Reply& reply,
                           const std::function<void(std::string_view, const StreamEntry&)>& fn);

/// The smallest stream id greater than `id` ("ms-seq" → "ms-(seq+1)", or the
/// next millisecond when seq is at its maximum); nullopt if `id` is not an
/// entry id.
std::optional<std::string> next_stream_id(std::string_view id);

/// XGROUP CREATE key group start_id MKSTREAM; an existing group (BUSYGROUP)
/// counts as success. `done` runs once on the loop thread.
void ensure_group(Topology& topo, std::string_view key, std::string_view group,
                  std::string_view start_id, std::function<void(Status)> done);

}  // namespace streamfleet::detail::redis
