#pragma once

// Control listener: responsible for hearing nudges (for the promoter) and cancels (for runs).
//
// Nudges (P{Q}:nudge) say "a delayed task became due earlier"; cancel requests (P{Q}:cancels) say
// "stop the run of task ID". Both are read with blocking XREADs, so nobody polls.
//
// Plain XREAD, not a group: every server sees every nudge and every cancel. P{Q}:nudge and
// P{Q}:cancels share their queue's hash tag; queues are grouped by shard (as the reader does) and
// each group gets one dedicated blocking connection, so no XREAD names keys of two shards.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/retry_backoff.hpp"
#include "redis/connection.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

class ControlListener {
public:
    struct Hooks {
        std::function<void(QueueContext&, std::int64_t due)> nudge;
        std::function<void(QueueContext&, std::string_view task_id)> cancel;
    };

    ControlListener(ServerContext& ctx, Queues queues, Hooks hooks);

    /// Plans the shard groups once the topology knows its layout, then listens.
    void start();
    /// Closes the connections and the retry timer.
    void stop();
    /// Issues a blocking XREAD on every group not listening yet.
    void tick();

private:
    struct Group {
        std::vector<QueueContext*> queues;
        std::shared_ptr<redis::Connection> conn;
        bool listening = false;
    };
    struct Cursor {
        std::string nudge_id = "0-0";  // last P{Q}:nudge entry seen
        std::string cancel_id;         // last P{Q}:cancels entry seen
    };

    void open(Group& g);
    void listen(Group& g);
    void on_entry(QueueContext& q, std::string_view stream, std::string_view id,
                  const std::vector<std::pair<std::string_view, std::string_view>>& fields);

    ServerContext& ctx_;
    Queues queues_;
    Hooks hooks_;
    bool stopped_ = false;
    std::vector<Cursor> cursors_;  // by QueueContext::index
    std::vector<std::unique_ptr<Group>> groups_;
    RetryBackoff backoff_;  // failed reads in a row wait longer; a good read resets it
    Timer retry_timer_;
};

}  // namespace streamfleet::detail
