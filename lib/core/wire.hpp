#pragma once

// The wire format of task and notification entries (docs/wire-format.md): flat
// field/value pairs, the Go streamfleet v1 fields first, `x_` extensions beside
// them. Decoders read fields by name, ignore names they do not know, and reject
// an entry whose known fields are missing or malformed with an error naming the
// field — the server dead-letters such entries with their raw fields.

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
    std::uint32_t max_retries = 0;   // 0 = until success or expiry
    std::int64_t expires_ts = 0;     // unix ms; 0 = never
    std::int64_t retry_delay_ms = 0;
    bool send_notif = false;
    std::uint32_t retries = 0;
    // Extensions; empty/zero means the field is absent on the wire.
    std::string name;                         // x_name
    std::optional<BackoffKind> backoff;       // x_backoff
    std::int64_t backoff_max_ms = 0;          // x_backoff_max
    std::int64_t timeout_ms = 0;              // x_timeout
    std::int64_t enqueued_ts = 0;             // x_enqueued_ts
    std::string unique;                       // x_unique
    std::string error;                        // x_error

    bool operator==(const TaskMessage&) const = default;
};

enum class NotificationType { completed, canceled, expired, error };
std::string_view to_string(NotificationType t) noexcept;

struct Notification {
    std::string task_id;
    NotificationType type = NotificationType::completed;
    std::string err_msg;  // for `error`
    std::string result;   // x_result, optional
    std::string server;   // x_server, optional

    bool operator==(const Notification&) const = default;
};

/// Field/value pairs ready to append to an XADD; views point into the encoded
/// message and into number text the list owns. Keep the message alive while the
/// views are used.
class FieldList {
public:
    void add(std::string_view field, std::string_view value);
    void add(std::string_view field, std::int64_t value);
    /// field, value, field, value, ...
    std::span<const std::string_view> views() const noexcept { return views_; }
    std::size_t pairs() const noexcept { return views_.size() / 2; }

private:
    std::deque<std::string> owned_;  // deque: growing never moves existing strings
    std::vector<std::string_view> views_;
};

using RawField = std::pair<std::string_view, std::string_view>;

FieldList encode(const TaskMessage& m);
FieldList encode(const Notification& n);

/// errc::protocol with a message such as "missing field 'id'",
/// "field 'max_retries' is not a non-negative integer: 'abc'" or
/// "unsupported enc_version '2'".
Result<TaskMessage> decode_task(std::span<const RawField> fields);
Result<Notification> decode_notification(std::span<const RawField> fields);

}  // namespace streamfleet::detail
