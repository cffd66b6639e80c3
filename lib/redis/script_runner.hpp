#pragma once

// Script runner: responsible for running a ScriptCall on the node that holds
// its keys. It sends EVALSHA; a node that does not know the script (never saw
// it, or restarted empty) answers NOSCRIPT, and the call is sent again as EVAL
// with the body, which also caches the script on that node. So every node
// learns each script on first use, with no separate SCRIPT LOAD to route and
// no state to keep per node. Loop thread only.

#include <string>

#include "core/scripts.hpp"
#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

/// Runs `call` routed by its first key; `cb` runs once with the reply.
void run_script(Topology& topo, ScriptCall call, ReplyCallback cb, CommandOptions opts = {});

/// Appends the RESP head of a script call that the caller completes with its
/// own pre-encoded keys and arguments: "*N EVALSHA sha1 numkeys" (or EVAL
/// body), where N counts `nkeys + nargs` more arguments to follow.
void append_script_head(std::string& out, const Script& script, bool by_body, std::size_t nkeys,
                        std::size_t nargs);

}  // namespace streamfleet::detail::redis
