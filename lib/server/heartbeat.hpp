#pragma once

// Heartbeat: responsible for this server's entry in every queue's P{Q}:servers.
//
// The score is the last beat (unix ms), which peers read to tell a dead server from a slow one; a
// clean shutdown removes the entry.

#include "server/context.hpp"

namespace streamfleet::detail {

class Heartbeat {
public:
    Heartbeat(ServerContext& ctx, Queues queues);

    /// Beats now and every heartbeat_interval.
    void start();
    void stop();
    /// One beat: ZADD P{Q}:servers now id, for every queue; `done` once every reply is in.
    void tick(Done done = {});
    /// Removes this server's entries (ZREM); `done` once every reply is in.
    void remove(Done done);

private:
    ServerContext& ctx_;
    Queues queues_;
    bool stopped_ = false;
    Timer timer_;
};

}  // namespace streamfleet::detail
