// TaskBuilder: turns a payload and TaskOptions into a valid TaskMessage, or names the bad field.
#include "client/task_builder.hpp"

#include <algorithm>

#include "core/scripts.hpp"
#include "core/time_limits.hpp"
#include "streamfleet/errors.hpp"

namespace streamfleet::detail::client {

namespace {

std::int64_t epoch_ms(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string ms(std::int64_t v) { return std::to_string(v) + " ms"; }

// A duration must be >= 0 and, added to `now`, stay at or before kMaxTimeMs; the message names the
// field and the bound.
void check_duration(const char* field, std::chrono::milliseconds d, std::int64_t now) {
    if (d.count() < 0) throw InvalidArgument(std::string(field) + " is negative");
    if (add_time(now, d.count()) < 0) {
        throw InvalidArgument(std::string(field) + " is too large: " + ms(d.count()) +
                              " from now is past 9999-12-31, the latest time a task may name");
    }
}

void check_instant(const char* field, std::chrono::system_clock::time_point t) {
    auto at = epoch_ms(t);
    if (at <= 0) throw InvalidArgument(std::string(field) + " is not after the unix epoch");
    if (at > kMaxTimeMs) {
        throw InvalidArgument(std::string(field) + " is past 9999-12-31 (" + std::to_string(at) +
                              " ms), the latest time a task may name");
    }
}

// Every check runs before anything is computed, in one fixed order, so a task
// with several bad fields is always refused for the same one.
void validate(std::string_view data, const TaskOptions& o, std::size_t max_payload,
              std::int64_t now) {
    if (data.size() > max_payload) {
        throw InvalidArgument("payload is " + std::to_string(data.size()) +
                              " bytes; max_payload_bytes is " + std::to_string(max_payload));
    }
    // The server adds retry_delay (or the backoff's cap), run_timeout to its own later now; the
    // bound keeps those sums far from overflowing too.
    check_duration("retry_delay", o.retry_delay, now);
    check_duration("expires_in", o.expires_in, now);
    check_duration("delay", o.delay, now);
    check_duration("run_timeout", o.run_timeout, now);
    check_duration("backoff_max", o.backoff_max, now);
    if (o.run_at) check_instant("run_at", *o.run_at);
    if (o.retention) check_duration("retention", *o.retention, now);
    if (!o.unique_key.empty() && o.unique_ttl.count() <= 0) {
        throw InvalidArgument("unique_ttl must be positive when unique_key is set");
    }
    check_duration("unique_ttl", o.unique_ttl, now);
    if (!o.id.empty()) {
        if (o.id.size() > 200) {
            throw InvalidArgument("id is " + std::to_string(o.id.size()) + " bytes; at most 200");
        }
        for (unsigned char c : o.id) {
            if (c <= 0x20 || c >= 0x7f) {
                throw InvalidArgument("id '" + o.id +
                                      "' has a space, a control or a non-ASCII byte");
            }
        }
        if (!o.unique_key.empty()) throw InvalidArgument("id and unique_key together");
    }
    if (o.expires_at) check_instant("expires_at", *o.expires_at);
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
    const auto now = clock_.now_ms();
    validate(data, o, options_.max_payload_bytes, now);
    TaskMessage m;
    m.id = o.id.empty() ? ids_.next() : o.id;
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
    // A chosen id is unique by the uniqueness key it names (unique_window()).
    m.unique = o.id.empty() ? o.unique_key : "id:" + o.id;
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

std::chrono::milliseconds TaskBuilder::unique_window(const TaskOptions& o) {
    if (o.id.empty()) return o.unique_ttl;
    // Long enough that a resend or a second add of the same id finds it while it may be queued,
    // delayed or readable as finished.
    using std::chrono::hours;
    auto retention = o.retention ? *o.retention : std::chrono::milliseconds(kDefaultRetentionMs);
    auto delay = o.delay;
    if (o.run_at) {
        auto until = std::chrono::duration_cast<std::chrono::milliseconds>(
            *o.run_at - std::chrono::system_clock::now());
        delay = std::max(delay, until);
    }
    return std::max<std::chrono::milliseconds>(hours(24), delay + retention + hours(24));
}

void TaskBuilder::check_many(const TaskOptions& o) {
    if (!o.id.empty()) throw InvalidArgument("id names one task; enqueue_many cannot use it");
    if (!o.unique_key.empty()) {
        throw InvalidArgument(
            "unique_key names one task; enqueue_many would make all but the first duplicates");
    }
}

}  // namespace streamfleet::detail::client
