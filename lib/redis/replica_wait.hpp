#pragma once

// ReplicaWait: responsible for confirming writes only once `replicas`
// replicas have them (WAIT), so a failover cannot drop what was confirmed.
// Writes sent in one loop turn to one route are followed by one
// `WAIT n timeout` on that route (the same connection, so it comes after
// them); each write's own reply reaches its callback only once that WAIT
// answered. WAIT blocks its connection until it answers, so at most one is
// outstanding per route: writes sent meanwhile share the next one, and a
// missing replica costs the connection one `timeout` at a time, not one per
// batch. A WAIT that counts fewer replicas turns the write's success into
// a transient errc::timeout: its owner keeps it and resends it later. Loop
// thread only.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

/// errc::invalid_argument naming the field when the option makes no sense
/// (negative count; no positive timeout, where WAIT 0 would block forever).
Status check_wait_replicas(int replicas, milliseconds timeout);

class ReplicaWait {
public:
    /// `replicas` 0: wrap() returns the callback unchanged.
    ReplicaWait(Runtime& rt, Topology& topo, int replicas, milliseconds timeout);

    bool enabled() const noexcept { return replicas_ > 0; }

    /// The callback to give the write about to be sent on `route_key`.
    ReplyCallback wrap(std::string route_key, ReplyCallback cb);

    /// Drops writes waiting for a WAIT not sent yet (their callbacks still run,
    /// with errc::closed). Idempotent.
    void close();

private:
    struct Slot {
        std::optional<Result<Reply>> own;  // the write's reply, once it came
        ReplyCallback cb;
        std::string route;
    };
    void send_waits();
    void answered(std::vector<std::shared_ptr<Slot>>& slots, Result<Reply> w);

    Topology& topo_;
    int replicas_;
    milliseconds timeout_;
    std::string replicas_arg_, timeout_arg_;
    std::map<std::string, std::vector<std::shared_ptr<Slot>>> turn_;  // by route, not yet waited
    std::map<std::string, bool> waiting_;  // by route: a WAIT is outstanding
    std::unique_ptr<TurnEnd> flush_;
};

}  // namespace streamfleet::detail::redis
