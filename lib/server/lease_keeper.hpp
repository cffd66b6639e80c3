#pragma once

// Lease keeper: responsible for renewing the leases of this server's running entries.
//
// Every lease/3 each entry it still owns is re-claimed by its owner (JUSTID: the delivery count
// stays), so no peer takes over a long task on a live server; one a peer already took is left to
// the peer. The entries are those running now and those whose outcome is still being written
// (Redis out of memory or away): a finished task must not run again for want of a lease while
// its outcome waits. keep.lua uses only XPENDING and XCLAIM, which Redis runs even when it
// refuses writes for memory.

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "redis/reply.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

class LeaseKeeper {
public:
    /// The entry ids of a queue this server holds now: running, or with an outcome being written.
    using Running = std::function<std::vector<std::string>(const QueueContext&)>;

    LeaseKeeper(ServerContext& ctx, Queues queues, Running running);

    /// Renews now and every lease/3.
    void start();
    void stop();
    /// One renewal of every running entry (lib/scripts/keep.lua, one call per queue); `done`
    /// once every reply is in.
    void tick(Done done = {});

private:
    std::size_t still_ours_not_kept(const QueueContext& q, const std::vector<std::string>& asked,
                                    const redis::Reply& kept) const;

    ServerContext& ctx_;
    Queues queues_;
    Running running_;
    bool stopped_ = false;
    Timer timer_;
};

}  // namespace streamfleet::detail
