#pragma once

// Janitor: responsible for orphaned client notification streams, dead-letter retention and
// expired families of finished-state buckets.
//
// Clients silent for longer than orphan_timeout lose their notification stream and heartbeat entry;
// dead letters are kept to dead_max entries and dead_max_age; a bucket family past its expiry
// (server/done_buckets.hpp) loses its buckets and then its place in P{Q}:done.

#include "server/context.hpp"

namespace streamfleet::detail {

class Janitor {
public:
    Janitor(ServerContext& ctx, Queues queues);

    /// Sweeps now and every orphan_timeout/2 (between 100 ms and a minute).
    void start();
    void stop();
    /// One sweep of orphaned clients, one trim of dead letters and one sweep of expired bucket
    /// families; `done` once every reply to them is in.
    void tick(Done done = {});

private:
    void sweep_orphans(const std::shared_ptr<Join>& join);
    void trim_dead_letters(const std::shared_ptr<Join>& join);
    void sweep_finished(const std::shared_ptr<Join>& join);

    ServerContext& ctx_;
    Queues queues_;
    bool stopped_ = false;
    Timer timer_;
};

}  // namespace streamfleet::detail
