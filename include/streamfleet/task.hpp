#pragma once

/// @file
/// Task ids, outcomes and the handle of a tracked task.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "streamfleet/export.hpp"

namespace streamfleet::detail {
struct HandleState;
}

namespace streamfleet {
inline namespace v1 {

/// A task id: UUIDv7 text, time-ordered.
using TaskId = std::string;

/// How a tracked task ended.
enum class TaskStatus { completed, error, expired, canceled };

/// @return "completed", "error", "expired" or "canceled".
STREAMFLEET_API std::string_view to_string(TaskStatus s) noexcept;

struct TaskOutcome {
    TaskStatus status = TaskStatus::completed;
    /// The handler's error text for `error`; the reason for `canceled`.
    std::string error{};
};

/// @brief The handle of a task enqueued with Client::enqueue_tracked().
/// @note Copies share one state; every method is thread-safe, and any number
///       of threads may wait at once.
class STREAMFLEET_API TaskHandle {
public:
    explicit TaskHandle(std::shared_ptr<detail::HandleState> state);

    /// The task's id.
    const TaskId& id() const noexcept;
    /// Blocks until the outcome is known.
    TaskOutcome wait() const;
    /// Blocks up to `timeout`; nullopt if the outcome is still unknown then.
    std::optional<TaskOutcome> wait_for(std::chrono::milliseconds timeout) const;
    /// Calls `cb` once with the outcome: at once (on this thread) if it is
    /// known, otherwise on the client's event-loop thread — keep it short.
    void on_done(std::function<void(const TaskOutcome&)> cb) const;
    /// True once the outcome is known.
    bool done() const;

private:
    std::shared_ptr<detail::HandleState> state_;
};

}  // namespace v1
}  // namespace streamfleet
