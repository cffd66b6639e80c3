#pragma once

// Job and slots: responsible for one delivered entry's record and the slots that bound them.
//
// A Job carries an entry from a read (or a claim) through a handler to its outcome; Slots count the
// handler slots, so a server never holds more jobs than it can run.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/wire.hpp"
#include "redis/reply.hpp"
#include "redis/streams.hpp"
#include "server/context.hpp"

namespace streamfleet {
inline namespace v1 {

// Points into the job that owns it (which outlives every handler call), so handing a task to its
// handler copies none of its strings.
struct TaskContext::Data {
    const detail::TaskMessage* msg = nullptr;
    const std::string* queue = nullptr;
    std::uint64_t deliveries = 1;
    std::stop_token token;
};

}  // namespace v1
}  // namespace streamfleet

namespace streamfleet::detail {

struct Job {
    QueueContext* queue = nullptr;
    std::string entry_id;
    // The raw fields view into the reply they came in, which the job keeps alive: no copy per
    // field, and a malformed entry's dead letter still has every byte as it was read.
    std::shared_ptr<const redis::Reply> source;
    std::vector<RawField> raw;
    TaskMessage msg;
    TaskContext::Data ctx;
    std::stop_source stop;
    std::optional<Outcome> outcome;
    bool interrupted = false;          // canceled by shutdown
    bool timed_out = false;            // ran past the task's x_timeout
    bool canceled = false;             // Client::cancel() asked for it while it ran
    bool canceled_in_record = false;   // handler thread, before the run: its record says canceled
    std::unique_ptr<Timer> run_timer;  // loop thread; set when x_timeout is
};

/// Where read and claimed entries go (the dispatcher).
class TaskSink {
public:
    virtual ~TaskSink() = default;
    /// Takes one entry that holds a slot; true if it went to a handler (keeping the slot), false
    /// if it was dealt with at once (expired, malformed, poison, returned), which frees the slot.
    virtual bool accept(QueueContext& q, const std::shared_ptr<const redis::Reply>& source,
                        const redis::StreamEntry& entry, std::uint64_t deliveries) = 0;
    /// Hands every entry accepted since the last call to the handlers, in one batch.
    virtual void dispatch() = 0;
};

/// The handler slots of one server. Invariant: free + reserved by outstanding reads and claims +
/// entries held by the dispatcher == concurrency, so the server never holds more tasks than it
/// can run. Loop thread only.
class Slots {
public:
    explicit Slots(unsigned total) : total_(total), free_(total) {}

    unsigned total() const noexcept { return total_; }
    unsigned free() const noexcept { return free_; }
    /// Reserves up to `n` slots; returns how many.
    unsigned take(unsigned n) noexcept {
        n = n < free_ ? n : free_;
        free_ -= n;
        return n;
    }
    void give(unsigned n) noexcept { free_ += n; }

    /// A claim of other servers' entries that found no free slot. Claims go before new work: the
    /// reader runs one waiter instead of its next read.
    void wait(std::function<void()> claim) { waiting_.push_back(std::move(claim)); }
    /// Runs the oldest waiter; false when none waits.
    bool run_waiter() {
        if (waiting_.empty()) return false;
        auto next = std::move(waiting_.front());
        waiting_.pop_front();
        next();
        return true;
    }
    void drop_waiters() { waiting_.clear(); }

private:
    unsigned total_;
    unsigned free_;
    std::deque<std::function<void()>> waiting_;
};

}  // namespace streamfleet::detail
