#pragma once

// The shared state behind TaskHandle: resolved once, by the notification
// listener (loop thread) or by Client::close (caller's thread).

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/keys.hpp"
#include "streamfleet/task.hpp"

namespace streamfleet::detail {

struct HandleState {
    explicit HandleState(TaskId task_id) : id(std::move(task_id)) {}

    /// Sets the outcome unless one is set already; runs the callbacks once.
    void resolve(TaskOutcome out);

    const TaskId id;
    // Loop thread only (the outbox writes, the listener reads): Redis
    // confirmed the task, and its queue's keys when it has a state record
    // (null: none). After a Redis restart the listener asks for its state.
    bool stored = false;
    const QueueKeys* record_keys = nullptr;

    std::mutex mutex;
    std::condition_variable cv;
    std::optional<TaskOutcome> outcome;                            // guarded by mutex
    std::vector<std::function<void(const TaskOutcome&)>> waiters;  // guarded by mutex
};

}  // namespace streamfleet::detail
