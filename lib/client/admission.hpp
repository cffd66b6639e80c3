// Admission: bounds the buffer of tasks not yet in Redis and hands accepted tasks to the loop.
#pragma once

// The buffer counts every task from its acceptance until Redis confirms it
// (release). Accepting and queueing for the loop happen under one lock, taken
// once per enqueue: acceptance order is the order the loop sees, and close()
// cannot slip between the two. Any thread, except take() (loop thread).

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "client/outgoing.hpp"
#include "core/wire.hpp"

namespace streamfleet::detail::client {

class Admission {
public:
    struct Limits {
        std::size_t max_tasks;
        std::size_t max_bytes;
        /// How long an admission waits for room; 0 = refuse at once.
        std::chrono::milliseconds full_timeout;
    };

    /// `wake` runs, under the lock, when the hand-off queue stops being empty:
    /// it must arrange one take() on the loop thread, and return false (and do
    /// nothing) once the loop refuses work. One wake per batch, however many
    /// callers add to it before the loop takes it.
    Admission(Limits limits, std::string client_id, std::function<bool()> wake);

    /// Bytes a task holds in the buffer: its payload plus a rough allowance for
    /// the fields and bookkeeping around it.
    static std::size_t footprint(const TaskMessage& m) { return m.data.size() + 256; }

    /// Takes room for `n` tasks of `bytes` in all, waiting up to full_timeout.
    /// @throws QueueFull (no room in time) or ClosedError.
    void reserve(std::size_t n, std::size_t bytes);
    /// Counts in tasks an earlier client accepted (spool replay). No bound
    /// applies: they were accepted already and must not be refused now.
    void count_in(std::size_t n, std::size_t bytes);

    /// Queues tasks for the loop, in order, taking their room first unless
    /// `reserved`. On a throw (QueueFull, ClosedError) nothing was queued and
    /// the room is given back.
    void hand_off(Outgoing&& task, bool reserved);
    void hand_off(std::vector<Outgoing>& batch, bool reserved);

    /// Loop thread: swaps everything queued since the last take into `out`
    /// (which must be empty), in acceptance order.
    void take(std::vector<Outgoing>& out);

    /// Gives back the room of `n` tasks of `bytes`: Redis confirmed them, or
    /// they were refused after reserve().
    void release(std::size_t n, std::size_t bytes);

    /// Refuses every later admission (ClosedError). False if already closed.
    bool close();
    /// Waits until nothing is buffered or `until` passes; true if nothing is.
    bool wait_drained(std::chrono::steady_clock::time_point until);

    std::size_t buffered() const;
    std::size_t buffered_bytes() const;

private:
    void reserve_locked(std::unique_lock<std::mutex>& lock, std::size_t n, std::size_t bytes);
    void release_locked(std::size_t n, std::size_t bytes);
    template <class Push>
    void hand_off_locked(std::size_t n, std::size_t bytes, bool reserved, Push push);
    [[noreturn]] void throw_closed() const;

    const Limits limits_;
    const std::string client_id_;
    const std::function<bool()> wake_;

    mutable std::mutex mutex_;
    std::condition_variable room_;     // signalled on every release
    std::condition_variable drained_;  // signalled when buffered_ reaches 0
    std::size_t buffered_ = 0;         // guarded by mutex_
    std::size_t buffered_bytes_ = 0;   // guarded by mutex_
    bool closed_ = false;              // guarded by mutex_
    std::vector<Outgoing> incoming_;   // guarded by mutex_
};

}  // namespace streamfleet::detail::client
