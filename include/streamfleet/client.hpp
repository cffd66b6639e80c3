#pragma once

/// @file
/// The producer side: enqueue tasks, optionally track their outcome.
///
/// **Example**:
/// @code
/// streamfleet::Client client({.redis = "redis://127.0.0.1:6379"}, {"emails"});
/// client.enqueue("emails", "hello");                       // fire and forget
/// auto h = client.enqueue_tracked("emails", "hi", {.max_retries = 3});
/// if (h.wait().status == streamfleet::TaskStatus::completed) { ... }
/// @endcode

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "streamfleet/codec.hpp"
#include "streamfleet/export.hpp"
#include "streamfleet/options.hpp"
#include "streamfleet/task.hpp"

namespace streamfleet {
inline namespace v1 {

class STREAMFLEET_API Client {
public:
    /// @brief Creates the client: a UUIDv7 id, its notification stream and
    ///        group, and heartbeats for each of `queues`. Connects in the background.
    /// @throws InvalidArgument for a bad URL, prefix or queue name;
    ///         Unsupported for schemes not available yet.
    Client(ClientOptions options, std::vector<std::string> queues);
    /// Calls close() with a 5 s deadline.
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// @brief Fire-and-forget: returns once the task is accepted locally; it
    ///        reaches Redis asynchronously, pipelined with others. A task
    ///        Redis refuses is reported to ClientOptions::on_refused.
    /// @warning A process killed right after this returned, before the task
    ///          left, loses it unless ClientOptions::spool_path is set (tests
    ///          saw tens of tasks per thousand lost to a SIGKILL): use the
    ///          spool, or enqueue_confirmed() where the caller must know.
    /// @throws UnknownQueue, InvalidArgument (payload too large), QueueFull, ClosedError.
    /// @note Thread-safe.
    TaskId enqueue(std::string_view queue, std::string_view data, const TaskOptions& opts = {});

    /// @brief Like enqueue(), but returns only once Redis has the task: the
    ///        call to use when a task must not be lost by a crash of this
    ///        process (without a spool, enqueue() returns before the task
    ///        leaves, and a client killed then loses what it had not sent).
    /// @param timeout how long to wait for Redis to confirm.
    /// @throws Refused when Redis refuses the task (NOPERM, WRONGTYPE, a
    ///         payload over its proto-max-bulk-len, OOM past oom_patience):
    ///         it is not enqueued and not resent. TimeoutError when Redis has
    ///         not confirmed within `timeout` (Redis unreachable): the task
    ///         stays buffered and is still sent. ClosedError when the client
    ///         closes first. Otherwise as enqueue(); InvalidArgument from the
    ///         client's loop thread (an on_done or on_refused callback).
    /// @note Thread-safe. The task is not tracked (it has no handle).
    TaskId enqueue_confirmed(std::string_view queue, std::string_view data,
                             const TaskOptions& opts = {},
                             std::chrono::milliseconds timeout = std::chrono::seconds(30));

    /// Told once whether Redis has task `id`: `why` is nullptr when it does, else why it never
    /// will (Refused, or ClosedError when the client closed first).
    using StoredCallback = std::function<void(const TaskId& id, std::exception_ptr why)>;

    /// @brief enqueue_confirmed() without the wait: returns the task's id once it is accepted
    ///        locally, and `on_stored` hears on the client's loop thread once Redis has it
    ///        (or refused it). Many can be in flight from one thread; they share pipelines.
    /// @note While Redis is unreachable the task stays buffered and `on_stored` waits with
    ///       it (a caller that must answer sooner keeps its own deadline). `on_stored` must
    ///       not block: it runs on the loop thread every task of this client goes through.
    /// @throws as enqueue().
    TaskId enqueue_async(std::string_view queue, std::string_view data, const TaskOptions& opts,
                         StoredCallback on_stored);

    /// @brief Like enqueue(), and the returned handle learns the outcome:
    ///        how the task ended, or TaskStatus::refused (Redis would not
    ///        store it), closed (this client closed first) or lost (Redis
    ///        restarted without persistence and lost it).
    TaskHandle enqueue_tracked(std::string_view queue, std::string_view data,
                               const TaskOptions& opts = {});

    /// @brief Enqueues a msgpack-encoded `T`; handlers read it with `task.as<T>()`.
    template <class T>
    requires(!std::is_convertible_v<const T&, std::string_view>) TaskId
        enqueue(std::string_view queue, const T& value, const TaskOptions& opts = {}) {
        return enqueue(queue, std::string_view(encode_msgpack(value)), opts);
    }
    template <class T>
    requires(!std::is_convertible_v<const T&, std::string_view>) TaskHandle
        enqueue_tracked(std::string_view queue, const T& value, const TaskOptions& opts = {}) {
        return enqueue_tracked(queue, std::string_view(encode_msgpack(value)), opts);
    }

    /// @brief Enqueues many fire-and-forget tasks in one pipeline.
    /// @return their ids, in order. All-or-nothing: nothing is accepted if any fails validation.
    std::vector<TaskId> enqueue_many(std::string_view queue, const std::vector<std::string>& data,
                                     const TaskOptions& opts = {});

    /// @brief Cancels task `id` of `queue`, wherever it is: a delayed task (or
    ///        one waiting for a retry) is removed; a task not yet delivered to a
    ///        server is removed and never runs; a running task's cancel token
    ///        fires and its outcome is canceled unless it finishes first. A
    ///        tracking client gets a `canceled` notification.
    /// @note Any client of the queue may cancel any task of it, whoever
    ///       enqueued it. Waits for Redis (one round trip).
    /// @throws NotFound for an id with no state record (unknown, enqueued with
    ///         track_state = false, or finished longer ago than its retention);
    ///         UnknownQueue; IoError/TimeoutError when Redis is unreachable;
    ///         InvalidArgument when called from an on_done callback (the
    ///         client's own loop thread, which this call would wait for).
    CancelResult cancel(std::string_view queue, std::string_view id);

    /// @brief Where task `id` of `queue` is: state, retries, last error and
    ///        timestamps. `TaskState::unknown` for an id with no state record.
    /// @throws UnknownQueue; IoError/TimeoutError when Redis is unreachable;
    ///         InvalidArgument from an on_done callback (as cancel()).
    TaskInfo get(std::string_view queue, std::string_view id);

    /// @brief Sends what is buffered within `deadline`, resolves open handles as
    ///        TaskStatus::closed (their tasks may still run, unseen), deletes
    ///        the notification stream, its group and the heartbeat entries.
    ///        Idempotent.
    /// @return true if every buffered task reached Redis in time.
    bool close(std::chrono::milliseconds deadline = std::chrono::seconds(5));

    /// This client's id (its notification stream is `PREFIXreceiver:{id}`).
    const std::string& id() const noexcept;

    /// This client's metrics in the Prometheus text format (0.0.4):
    /// streamfleet_tasks_enqueued_total by queue (tasks accepted since it opened). Any thread.
    std::string metrics_text() const;

    /// Tasks accepted by enqueue but not yet confirmed by Redis (the local
    /// buffer's fill, bounded by max_buffered).
    std::size_t buffered() const;

    /// Notifications received for tasks this client does not track (counted, logged at debug).
    std::uint64_t unknown_notifications() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace v1
}  // namespace streamfleet
