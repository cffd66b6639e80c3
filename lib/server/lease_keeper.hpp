#pragma once

// Lease keeper: responsible for renewing the leases of this server's running entries.
//
// Every lease/3 each entry it still owns is re-claimed by its owner (JUSTID: the delivery count
// stays), so no peer takes over a long task on a live server; one a peer already took is left to
// the peer.

#include <functional>
#include <string>
#include <vector>

#include "server/context.hpp"

namespace streamfleet::detail {

class LeaseKeeper {
public:
    /// The entry ids of a queue this server is running now.
    using Running = std::function<std::vector<std::string>(const QueueContext&)>;

    LeaseKeeper(ServerContext& ctx, Queues queues, Running running);

    /// Renews now and every lease/3.
    void start();
    void stop();
    /// One renewal of every running entry (lib/scripts/keep.lua, one call per queue); `done`
    /// once every reply is in.
    void tick(Done done = {});

private:
    ServerContext& ctx_;
    Queues queues_;
    Running running_;
    bool stopped_ = false;
    Timer timer_;
};

}  // namespace streamfleet::detail
