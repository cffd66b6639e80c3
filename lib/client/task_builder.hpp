// TaskBuilder: turns a payload and TaskOptions into a valid TaskMessage, or names the bad field.
#pragma once

#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/uuid.hpp"
#include "core/wire.hpp"
#include "streamfleet/options.hpp"

namespace streamfleet::detail::client {

/// Any thread: ids come from one generator, which keeps them strictly
/// increasing whichever thread asks.
class TaskBuilder {
public:
    /// `options` and `clock` must outlive the builder.
    TaskBuilder(const ClientOptions& options, std::string client_id, const Clock& clock);

    /// A new task with a fresh UUIDv7 id, stamped with the clock's now: the
    /// delay, run_at and expiry become absolute times. A due time already past
    /// runs at once, like no delay at all.
    /// @throws InvalidArgument naming the field (payload size, a negative
    ///         duration, an instant before the epoch, a duration or instant
    ///         that ends past 9999-12-31, unique_key without a ttl).
    TaskMessage build(std::string_view data, const TaskOptions& o, bool tracked);

    /// A fresh unique token (a UUIDv7), for what must tell one enqueue from another.
    std::string nonce() { return ids_.next(); }
    /// The options enqueue_many cannot apply to many tasks at once.
    /// @throws InvalidArgument for a unique_key or an id.
    static void check_many(const TaskOptions& o);
    /// How long a task's uniqueness key is held: unique_ttl, or for a chosen id a window that
    /// outlasts the task's queueing, delay and retention.
    static std::chrono::milliseconds unique_window(const TaskOptions& o);

private:
    const ClientOptions& options_;
    const std::string client_id_;
    const Clock& clock_;
    UuidV7Generator ids_;
};

}  // namespace streamfleet::detail::client
