#pragma once

// Puller: responsible for pulled queues (Server::pull): tasks handed to pop() callers instead of
// handlers, and ended by settle().
//
// Reading: a pulled queue is read only for pops that wait: each read asks for as many entries
// as pops wait (less those a task being checked will serve), as the free slots permit, and
// blocks no longer than the oldest of them has left. So a task is delivered in Redis only
// when a pop takes it: "active" means popped, and the queue keeps its order. (Reading ahead of
// the pops was tried: ~7% more pop + finish under 16 busy clients, within the noise, for tasks
// shown active that nobody had popped, and put back behind newer ones when no pop came.)
// Each pulled queue has a connection of its own. Read entries go through the dispatcher like
// any (expiry, poison, cancels, the outcome writer), which hands accepted ones back here.
//
// Holding: an entry that comes when its pop has given up (or one the reclaimer took over) waits
// for the next pop for up to kHoldMs, then goes back to its stream, so a gateway nobody pops from
// does not sit on tasks. A popped task is held until settle() or its lease runs out, which
// counts as a failed run (retried per the task's policy): a caller that vanishes costs a retry,
// as a crashed handler would. Held and popped tasks are the dispatcher's running jobs, so the
// lease keeper renews them in Redis and the reclaimer never takes them from a live server.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/retry_backoff.hpp"
#include "redis/connection.hpp"
#include "server/job.hpp"

namespace streamfleet::detail {

class Puller {
public:
    /// How long a delivered task waits for a pop before it goes back to its stream.
    static constexpr std::int64_t kHoldMs = 2'000;
    /// The shortest wait of a pop: one that may not wait still gets a read's round trip.
    static constexpr std::int64_t kMinWaitMs = 20;

    struct Hooks {
        /// Ends a held job with `outcome` (Dispatcher::settle). Loop thread.
        std::function<void(const std::shared_ptr<Job>&, Outcome)> settle;
        /// The stream or its group is gone: create them, then call back.
        std::function<void(Done)> recreate_groups;
    };

    Puller(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks);

    /// Loop thread. `q` must be pulled; `wait_ms` >= 0, `lease_ms` > 0.
    void pop(QueueContext& q, std::int64_t wait_ms, std::int64_t lease_ms,
             Server::PopCallback done);
    /// Any thread: takes the right to settle popped task `task_id` of `q`, which settle() then
    /// uses; false when no popped task has that id (never popped, settled already, its lease
    /// ran out, or another caller claimed it). A claimed task's lease no longer runs out, so
    /// the caller can be told at once that its settle is taken.
    bool claim(const QueueContext& q, std::string_view task_id);
    /// Loop thread, after claim(). False when the task left meanwhile (canceled, or shutdown's
    /// grace ended): then it went back to its stream or ended as canceled without `outcome`.
    bool settle(QueueContext& q, std::string_view task_id, Outcome outcome);

    /// Slots were freed: pops that wait for one may read now.
    void kick();
    /// An accepted job of a pulled queue, from the dispatcher. Loop thread.
    void deliver(std::shared_ptr<Job> job);
    /// A cancel reached a held or popped job: it ends now, as canceled.
    void canceled(const std::shared_ptr<Job>& job);

    /// Pops wait no more (answered empty) and held tasks go back to their stream; popped ones
    /// may still be settled.
    void stop();
    /// Popped tasks not settled yet go back to their stream (shutdown's grace is over).
    void interrupt();
    /// Closes connections and timers. Loop thread, when the runtime stops.
    void close();

private:
    struct Waiter {
        std::int64_t deadline_ms, lease_ms;
        Server::PopCallback done;
    };
    struct Held {
        std::shared_ptr<Job> job;
        std::int64_t since_ms;
    };
    struct Popped {
        std::shared_ptr<Job> job;
        std::unique_ptr<Timer> lease;
        std::chrono::steady_clock::time_point at;  // popped: its run's start, for the metrics
    };
    struct Line {
        QueueContext* queue = nullptr;
        std::shared_ptr<redis::Connection> conn;
        std::deque<Waiter> waiters;
        std::deque<Held> held;
        std::unordered_map<std::string, Popped> popped;  // by task id
        // The one part of a line other threads touch (claim()), under m: every popped task's
        // id, true once a settle claimed it. An id leaves `ids` when its task leaves `popped`;
        // one not claimed is taken out on the loop before its task ends any other way, so a
        // task ends once: by its settle, or by that.
        std::mutex m;
        std::unordered_map<std::string, bool> ids;
        // Delivered tasks whose record is being checked (deliver()): each will serve a
        // waiting pop, so reads are not made for those pops.
        std::size_t checking = 0;
        bool reading = false;
        std::unique_ptr<Timer> retry;
    };

    Line& line(const QueueContext& q) { return *lines_.at(q.index); }
    void read(Line& l);
    void on_read(Line& l, Result<redis::Reply> res, unsigned reserved);
    // deliver() once the record check is done (or not needed).
    void place(std::shared_ptr<Job> job);
    void hand_over(Line& l, Waiter w, std::shared_ptr<Job> job);
    void expire_waiters();
    void sweep();
    void arm_sweep();
    PoppedTask view(const Job& job, std::int64_t lease_ms) const;
    // The popped run's duration into its queue's handler histogram.
    void record_run(const Popped& p);
    // Ends a held or popped job with `outcome`, then lets waiting pops use its slot.
    void end(const std::shared_ptr<Job>& job, Outcome outcome);
    bool forget(const std::shared_ptr<Job>& job);
    // Loop thread: takes `id` out of the popped ids unless a settle claimed it (then false).
    static bool unclaim(Line& l, const std::string& id);


    ServerContext& ctx_;
    Slots& slots_;
    TaskSink& sink_;
    Hooks hooks_;
    std::vector<std::unique_ptr<Line>> lines_;  // by queue index; null for handled queues
    RetryBackoff backoff_;
    Timer waiters_timer_, sweep_timer_;
    bool stopped_ = false;
};

}  // namespace streamfleet::detail
