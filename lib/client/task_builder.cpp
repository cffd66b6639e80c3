// TaskBuilder: turns a payload and TaskOptions into a valid TaskMessage, or names the bad field.
#include "client/task_builder.hpp"

#include <algorithm>

#include "core/scripts.hpp"
#include "streamfleet/errors.hpp"

namespace streamfleet::detail::client {

namespace {

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Every check runs before anything is computed, in one fixed order, so a task
// with several bad fields is always refused for the same one.
void validate(std::string_view data, const TaskOptions& o, std::size_t max_payload) {
    if (data.size() > max_payload) {
        throw InvalidArgument("payload is " + std::to_string(data.size()) +
                              " bytes; max_payload_bytes is " + std::to_string(max_payload));
    }
    if (o.retry_delay.count() < 0) throw InvalidArgument("retry_delay is negative");
    if (o.expires_in.count() < 0) throw InvalidArgument("expires_in is negative");
    if (o.delay.count() < 0) throw InvalidArgument("delay is negative");
    if (o.run_timeout.count() < 0) throw InvalidArgument("run_timeout is negative");
    if (o.backoff_max.count() < 0) throw InvalidArgument("backoff_max is negative");
    if (o.run_at && epoch_ms(*o.run_at) <= 0) {
        throw InvalidArgument("run_at is not after the unix epoch");
    }
    if (o.retention && o.retention->count() < 0) throw InvalidArgument("retention is negative");
    if (!o.unique_key.empty() && o.unique_ttl.count() <= 0) {
        throw InvalidArgument("unique_ttl must be positive when unique_key is set");
    }
    if (o.expires_at && epoch_ms(*o.expires_at) <= 0) {
        throw InvalidArgument("expires_at is not after the unix epoch");
    }
}

BackoffKind kind_of(Backoff b) {
    switch (b) {
        case Backoff::fixed:
            return BackoffKind::fixed;
        case Backoff::linear:
            return BackoffKind::linear;
        case Backoff::exponential:
            return BackoffKind::exponential;
    }
    return BackoffKind::fixed;
}

}  // namespace

TaskBuilder::TaskBuilder(const ClientOptions& options, std::string client_id, const Clock& clock)
    : options_(options), client_id_(std::move(client_id)), clock_(clock), ids_(clock) {}

TaskMessage TaskBuilder::build(std::string_view data, const TaskOptions& o, bool tracked) {
    validate(data, o, options_.max_payload_bytes);
    TaskMessage m;
    const auto now = clock_.now_ms();
    m.id = ids_.next();
    m.client_id = client_id_;
    m.data = std::string(data);
    m.max_retries = o.max_retries;
    m.retry_delay_ms = o.retry_delay.count();
    m.send_notif = tracked;
    m.enqueued_ts = now;
    std::int64_t due = o.delay.count() > 0 ? now + o.delay.count() : 0;
    if (o.run_at) due = std::max(due, epoch_ms(*o.run_at));
    m.run_at_ms = due > now ? due : 0;
    m.timeout_ms = o.run_timeout.count();
    m.unique = o.unique_key;
    // Go-compatible: no record, since a Go worker that runs the task would never finish it and
    // the record would stay in Redis for good.
    m.state = options_.track_state && !options_.go_compatible;
    if (m.state) m.retention_ms = o.retention ? o.retention->count() : kDefaultRetentionMs;
    if (o.backoff) {
        m.backoff = kind_of(*o.backoff);
        m.backoff_max_ms = o.backoff_max.count();
    }
    std::int64_t expires = o.expires_in.count() > 0 ? now + o.expires_in.count() : 0;
    if (o.expires_at) {
        auto at = epoch_ms(*o.expires_at);
        expires = expires == 0 ? at : std::min(expires, at);
    }
    m.expires_ts = expires;
    return m;
}

void TaskBuilder::check_many(const TaskOptions& o) {
    if (!o.unique_key.empty()) {
        throw InvalidArgument(
            "unique_key names one task; enqueue_many would make all but the first duplicates");
    }
}

}  // namespace streamfleet::detail::client
