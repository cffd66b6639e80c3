#pragma once

// Janitor: responsible for what nobody else cleans up -- the notification streams (and heartbeat
// entries) of clients silent for longer than orphan_timeout, and dead letters past their
// retention (dead_max entries, dead_max_age).

#include "server/context.hpp"

namespace streamfleet::detail {

class Janitor {
public:
    Janitor(ServerContext& ctx, Queues queues);

    /// Sweeps now and every orphan_timeout/2 (between 100 ms and a minute).
    void start();
    void stop();
    /// One sweep of orphaned clients and one trim of dead letters; `done` once every reply to
    /// them is in.
    void tick(Done done = {});

private:
    void sweep_orphans(const std::shared_ptr<Join>& join);
    void trim_dead_letters(const std::shared_ptr<Join>& join);

    ServerContext& ctx_;
    Queues queues_;
    bool stopped_ = false;
    Timer timer_;
};

}  // namespace streamfleet::detail
