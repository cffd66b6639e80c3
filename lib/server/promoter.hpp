#pragma once

// Promoter: responsible for moving due delayed tasks and retries into their stream.
//
// One lib/scripts/promote.lua call per queue (atomic, so any number of promoters never move a task
// twice); then a uv timer sleeps until the earliest due time it knows of -- never polling faster
// than needed, never later than a second.

#include <cstdint>
#include <memory>
#include <vector>

#include "redis/reply.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

class Promoter {
public:
    Promoter(ServerContext& ctx, Queues queues);

    /// Promotes every queue now; each then sleeps until its earliest due task.
    void start();
    void stop();
    /// One promotion of every queue; `done` once every queue has nothing more due right now.
    void tick(Done done = {});
    /// Something in `q`'s delayed set is due at `due` (unix ms): make sure the timer fires by then.
    void want(QueueContext& q, std::int64_t due);

private:
    struct PerQueue {
        QueueContext* queue = nullptr;
        std::unique_ptr<Timer> timer;
        std::int64_t armed_for = -1;  // unix ms the timer is set for, -1 = idle
        bool promoting = false;       // a promote script is in flight
        std::int64_t wanted = -1;     // earliest due heard of while promoting
    };

    void promote(PerQueue& pq, Done done);
    void arm(PerQueue& pq, std::int64_t due);
    void notify_canceled(const QueueContext& q, const redis::Reply& list);

    ServerContext& ctx_;
    bool stopped_ = false;
    std::vector<PerQueue> queues_;  // by QueueContext::index
};

}  // namespace streamfleet::detail
