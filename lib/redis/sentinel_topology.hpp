#pragma once

// SentinelTopology: responsible for finding the master of a Redis Sentinel
// deployment, talking to it like Standalone does (one shared pipelined
// connection, dedicated ones for blocking reads), and moving every connection
// it made to the new master after a failover. Loop thread only.
//
// Finding the master: the sentinels are asked in turn for
// SENTINEL get-master-addr-by-name; the answer is believed only once the node
// itself says ROLE master (a sentinel names the promoted replica before it has
// been promoted). Until then data connections do not connect (their endpoint
// source answers "not confirmed"), so nothing is written to a replica or a
// demoted master; their commands wait in the offline queue, bounded by their
// deadlines.
//
// Asking again: on +switch-master (a subscription on one sentinel), on a data
// connection's loss, on -READONLY / -LOADING / -MASTERDOWN replies, and every
// few seconds (in case the subscription missed the switch). The sentinel list
// grows with SENTINEL sentinels, so the seeds may die.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

std::unique_ptr<Topology> make_sentinel_topology(Runtime& rt, Address address,
                                                 ConnectionOptions options);

}  // namespace streamfleet::detail::redis
