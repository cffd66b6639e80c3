#pragma once

// Blocking helpers for code outside the loop thread: tools, the demo, tests.
// They post the command into the loop and wait for its reply; the wait is
// bounded by the command's own deadline, so they never hang.

#include <memory>
#include <string>
#include <vector>

#include "core/scripts.hpp"
#include "redis/block.hpp"
#include "redis/connection.hpp"
#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

/// Sends `argv` to the node holding `route_key` and waits for the reply. An
/// empty `route_key` is for keyless commands any node answers (INFO, PING).
/// Not from the loop thread.
Result<Reply> call(Runtime& rt, Topology& topology, std::string route_key,
                   std::vector<std::string> argv, CommandOptions opts = {});

/// Runs a script call (EVALSHA, NOSCRIPT fallback) and waits for the reply.
Result<Reply> call(Runtime& rt, Topology& topology, ScriptCall script, CommandOptions opts = {});

/// Sends a transaction and waits for EXEC's reply (or the first error).
Result<Reply> call(Runtime& rt, Topology& topology, const Block& block);

/// Sends `argv` on `conn` and waits for the reply. Not from the loop thread.
Result<Reply> call(Runtime& rt, const std::shared_ptr<Connection>& conn,
                   std::vector<std::string> argv, CommandOptions opts = {});

}  // namespace streamfleet::detail::redis
