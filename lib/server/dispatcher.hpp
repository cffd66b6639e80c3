#pragma once

// Dispatcher: responsible for turning delivered entries into handler runs and outcomes.
//
// It decodes, checks poison (max_deliveries) and expiry, arms the run timer (x_timeout) and hands
// the task to the handler pool; each handler's result becomes a call of the outcome writer. It
// never blocks the loop: handlers run on the pool's threads and their results come back in batches.
// A pulled queue's task goes to the puller instead (server/puller.hpp), which settles it with the
// outcome its popper reports, and keeps its own lease in place of the run timer.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/handler_pool.hpp"
#include "server/job.hpp"
#include "server/outcome_writer.hpp"

namespace streamfleet::detail {

class Dispatcher final : public TaskSink {
public:
    struct Hooks {
        /// The count of running jobs changed (shutdown waits for it to reach 0).
        std::function<void()> changed;
        /// Slots were given back after a batch of jobs finished: read more.
        std::function<void()> slots_freed;
        /// Accepted jobs of pulled queues (Server::pull) go here instead of to a handler.
        std::function<void(std::shared_ptr<Job>)> pulled;
        /// A cancel reached a running job of a pulled queue.
        std::function<void(const std::shared_ptr<Job>&)> pulled_canceled;
    };

    Dispatcher(ServerContext& ctx, Slots& slots, OutcomeWriter& writer, Hooks hooks);

    /// Starts `threads` handler threads. Any thread.
    void start(unsigned threads);
    /// Starts no more handlers: unstarted jobs, and entries accepted from now on, go back to their
    /// stream. Loop thread.
    void stop();
    /// Fires every running job's cancel token; their runs go back to the stream. Loop thread.
    void interrupt();
    /// Closes the run timers. Loop thread, when the runtime stops.
    void close();
    /// Joins the handler threads (running handlers finish first). Not on a handler thread.
    void join() { pool_.stop(); }
    /// Finishes every job whose handler has returned. Loop thread.
    void tick();
    /// Finishes a job of a pulled queue with `outcome`, as if its handler had returned it.
    /// Loop thread.
    void settle(const std::shared_ptr<Job>& job, Outcome outcome);

    bool accept(QueueContext& q, const std::shared_ptr<const redis::Reply>& source,
                const redis::StreamEntry& entry, std::uint64_t deliveries) override;
    void dispatch() override;

    /// Jobs accepted and not finished.
    std::size_t in_flight() const noexcept { return running_.size(); }
    /// Entry ids of `q` that this server holds (for the lease keeper).
    std::vector<std::string> running_entries(const QueueContext& q) const;
    bool is_running(const QueueContext& q, std::string_view entry_id) const;
    /// Client::cancel() reached this server: stop the run of task `task_id` of `q`, if held here,
    /// and remember it for a while, in case its entry is delivered here later (a read answered
    /// before the cancel, a redelivery): it is then finalised as canceled without running.
    void cancel(const QueueContext& q, std::string_view task_id);
    /// True on one of this dispatcher's handler threads. Any thread.
    bool on_handler_thread() const noexcept { return pool_.on_own_thread(); }

private:
    using JobPtr = std::shared_ptr<Job>;

    void run(JobPtr& job);  // handler thread
    void finish(const JobPtr& job);
    bool remembered_cancel(const QueueContext& q, const std::string& task_id);
    bool canceled_in_record(const Job& job);  // handler thread

    ServerContext& ctx_;
    Slots& slots_;
    OutcomeWriter& writer_;
    Hooks hooks_;
    bool stopped_ = false;
    std::unordered_map<Job*, JobPtr> running_;  // accepted, not finished
    // Cancels heard lately, by queue index + task id, oldest first (loop thread).
    std::unordered_set<std::string> canceled_;
    std::deque<std::pair<std::int64_t, std::string>> canceled_order_;

    // Accepted jobs of one read go to the pool in one push; finished ones come back through
    // done_, which wakes the loop once per batch, not per job.
    std::vector<JobPtr> to_run_;  // loop thread: accepted, not pushed yet
    std::mutex done_mutex_;
    std::vector<JobPtr> done_;        // guarded by done_mutex_
    std::vector<JobPtr> done_batch_;  // loop thread: being finished
    // Last: its threads call run(), which touches the members above.
    HandlerPool<JobPtr> pool_;
};

}  // namespace streamfleet::detail
