#pragma once

// The wire format of task and notification entries (docs/wire-format.md): flat
// field/value pairs, the Go streamfleet v1 fields first, `x_` extensions beside
// them. Decoders read fields by name, ignore names they do not know, and reject
// an entry whose known fields are missing or malformed with an error naming the
// field — the server dead-letters such entries with their raw fields.

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace streamfleet::detail {

inline constexpr std::string_view kEncVersion = "1";

enum class BackoffKind { fixed, linear, exponential };
std::string_view to_string(BackoffKind k) noexcept;
std::optional<BackoffKind> parse_backoff(std::string_view s) noexcept;

struct TaskMessage {
    std::string id;
    std::string client_id;
    std::string data;
    std::uint32_t max_retries = 0;  // 0 = until success or expiry
    std::int64_t expires_ts = 0;    // unix ms; 0 = never
    std::int64_t retry_delay_ms = 0;
    bool send_notif = false;
    std::uint32_t retries = 0;
    // Extensions; empty/zero means the field is absent on the wire.
    std::string name;                    // x_name
    std::optional<BackoffKind> backoff;  // x_backoff
    std::int64_t backoff_max_ms = 0;     // x_backoff_max
    std::int64_t timeout_ms = 0;         // x_timeout
    std::int64_t enqueued_ts = 0;        // x_enqueued_ts
    std::int64_t run_at_ms = 0;          // x_run_at: due time of a delayed task
    bool state = false;                  // x_state: a P{Q}:task:ID record exists
    std::int64_t retention_ms = -1;      // x_retention: finished state kept; -1 = default
    std::string history;                 // x_history: msgpack array of failed runs, see history_add
    std::string unique;                  // x_unique
    std::string error;                   // x_error

    bool operator==(const TaskMessage&) const = default;
};

enum class NotificationType { completed, canceled, expired, error };
std::string_view to_string(NotificationType t) noexcept;

struct Notification {
    std::string task_id;
    NotificationType type = NotificationType::completed;
    std::string err_msg;  // for `error`; always on the wire, empty otherwise (Go requires it)
    std::string result;   // x_result, optional
    std::string server;   // x_server, optional

    bool operator==(const Notification&) const = default;
};

/// Field/value pairs ready to append to an XADD; views point into the encoded
/// message and into number text the list owns. Keep the message alive while the
/// views are used.
class FieldList {
public:
    FieldList() = default;
    // Views may point into this object's own number buffer, so a move re-points
    // them; copies would need the same care and are not needed.
    FieldList(FieldList&& other) noexcept;
    FieldList& operator=(FieldList&&) = delete;
    FieldList(const FieldList&) = delete;
    FieldList& operator=(const FieldList&) = delete;

    void add(std::string_view field, std::string_view value);
    void add(std::string_view field, std::int64_t value);
    /// field, value, field, value, ...
    std::span<const std::string_view> views() const noexcept { return views_; }
    std::size_t pairs() const noexcept { return views_.size() / 2; }

private:
    // Numbers are formatted into an inline buffer: encoding a task is on the
    // enqueue fast path, and a heap string per number showed up there.
    static constexpr std::size_t kNumBytes = 20 * 12;
    std::array<char, kNumBytes> nums_{};
    std::size_t nums_used_ = 0;
    std::deque<std::string> overflow_;  // deque: growing never moves existing strings
    std::vector<std::string_view> views_;
};

using RawField = std::pair<std::string_view, std::string_view>;

/// Calls add(field, value) for every field of `m`, in wire order; values are
/// std::string_view or std::int64_t. The one place that knows a task's fields:
/// encode() and the client's direct RESP writer both go through it.
template <class Add>
void visit_fields(const TaskMessage& m, Add&& add) {
    add("enc_version", kEncVersion);
    add("id", std::string_view(m.id));
    add("client_id", std::string_view(m.client_id));
    add("data", std::string_view(m.data));
    add("max_retries", static_cast<std::int64_t>(m.max_retries));
    add("expires_ts", m.expires_ts);
    add("retry_delay", m.retry_delay_ms);
    add("send_notif", std::string_view(m.send_notif ? "1" : "0"));
    add("retries", static_cast<std::int64_t>(m.retries));
    if (!m.name.empty()) add("x_name", std::string_view(m.name));
    if (m.backoff) {
        add("x_backoff", to_string(*m.backoff));
        add("x_backoff_max", m.backoff_max_ms);
    }
    if (m.timeout_ms != 0) add("x_timeout", m.timeout_ms);
    if (m.enqueued_ts != 0) add("x_enqueued_ts", m.enqueued_ts);
    if (m.run_at_ms != 0) add("x_run_at", m.run_at_ms);
    if (m.state) add("x_state", std::string_view("1"));
    if (m.retention_ms >= 0) add("x_retention", m.retention_ms);
    if (!m.history.empty()) add("x_history", std::string_view(m.history));
    if (!m.unique.empty()) add("x_unique", std::string_view(m.unique));
    if (!m.error.empty()) add("x_error", std::string_view(m.error));
}

/// Appends "UNIX_MS error" to a packed x_history (msgpack array of strings,
/// oldest first), keeping the last `keep` entries, so a dead letter shows
/// every failed run that led to it, bounded.
std::string history_add(std::string_view packed, std::int64_t at_ms, std::string_view error,
                        std::size_t keep = 16);
/// The entries of a packed x_history; empty when absent or unreadable.
std::vector<std::string> history_entries(std::string_view packed);

FieldList encode(const TaskMessage& m);
FieldList encode(const Notification& n);

/// errc::protocol with a message such as "missing field 'id'",
/// "field 'max_retries' is not a non-negative integer: 'abc'" or
/// "unsupported enc_version '2'".
Result<TaskMessage> decode_task(std::span<const RawField> fields);
Result<Notification> decode_notification(std::span<const RawField> fields);

}  // namespace streamfleet::detail
