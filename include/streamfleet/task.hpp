#pragma once

/// @file
/// Task ids, outcomes and the handle of a tracked task.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "streamfleet/export.hpp"

namespace streamfleet::detail {
struct HandleState;
}

namespace streamfleet {
inline namespace v1 {

/// A task id: UUIDv7 text, time-ordered.
using TaskId = std::string;

/// How a tracked task ended, or why its handle stopped waiting.
enum class TaskStatus {
    completed,
    error,
    expired,
    canceled,
    /// Redis refused to store the task (no permission, out of memory for
    /// longer than `ClientOptions::oom_patience`, a key of the wrong type, a
    /// payload over Redis's `proto-max-bulk-len`, ...): it was never enqueued
    /// and will not run. `error` is Redis's reply.
    refused,
    /// The client closed before the outcome arrived. The task may still run
    /// (or have run); this client will not hear of it.
    closed,
    /// Redis lost the task after storing it: the server restarted without
    /// persistence (the client's notification stream and the task's state
    /// record vanished). It will not run again; a run already under way may
    /// still finish unseen.
    lost,
};

/// @return "completed", "error", "expired", "canceled", "refused", "closed" or "lost".
STREAMFLEET_API std::string_view to_string(TaskStatus s) noexcept;

struct TaskOutcome {
    TaskStatus status = TaskStatus::completed;
    /// The handler's error text for `error`; the reason for `canceled`,
    /// `refused`, `closed` and `lost`.
    std::string error{};
};

/// Where a task is in its life (DESIGN.md "States"). `failed` = a run failed
/// and the task waits out its retry backoff in P{Q}:delayed.
enum class TaskState {
    unknown,
    delayed,
    ready,
    active,
    completed,
    failed,
    dead,
    expired,
    canceled
};

/// @return "unknown", "delayed", "ready", "active", "completed", "failed",
///         "dead", "expired" or "canceled".
STREAMFLEET_API std::string_view to_string(TaskState s) noexcept;

/// What Client::get() knows of a task.
struct TaskInfo {
    TaskId id;
    TaskState state = TaskState::unknown;
    std::uint32_t retries = 0;     ///< retries so far
    std::string error{};           ///< the last run's error, if any
    std::int64_t created_ms = 0;   ///< unix ms it was enqueued
    std::int64_t updated_ms = 0;   ///< unix ms of the last state change
    std::int64_t finished_ms = 0;  ///< unix ms it finished (0 while it lives)
    std::int64_t run_at_ms = 0;    ///< when delayed or waiting for a retry: when it is due
    /// Its failed runs, oldest first, each "UNIX_MS error" (the last 16, as its dead letter
    /// lists them): kept while the task lives or lies dead; a task that completes
    /// keeps only its final state.
    std::vector<std::string> history{};
};

/// What Client::cancel() did.
enum class CancelResult {
    delayed,   ///< it was waiting in P{Q}:delayed (scheduled, or between retries): removed
    ready,     ///< it was in the queue, not yet delivered: removed, it never runs
    active,    ///< it was running (or delivered): its cancel token fires; the
               ///< outcome is canceled unless it finished first
    finished,  ///< it had already finished; nothing changed
};

/// @return "delayed", "ready", "active" or "finished".
STREAMFLEET_API std::string_view to_string(CancelResult r) noexcept;

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
