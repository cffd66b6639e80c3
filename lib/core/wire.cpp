#include "core/wire.hpp"

#include <charconv>
#include <limits>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>

namespace streamfleet::detail {

std::string_view to_string(BackoffKind k) noexcept {
    switch (k) {
        case BackoffKind::fixed:
            return "fixed";
        case BackoffKind::linear:
            return "linear";
        case BackoffKind::exponential:
            return "exponential";
    }
    return "fixed";
}

std::optional<BackoffKind> parse_backoff(std::string_view s) noexcept {
    if (s == "fixed") return BackoffKind::fixed;
    if (s == "linear") return BackoffKind::linear;
    if (s == "exponential") return BackoffKind::exponential;
    return std::nullopt;
}

std::string_view to_string(NotificationType t) noexcept {
    switch (t) {
        case NotificationType::completed:
            return "completed";
        case NotificationType::canceled:
            return "canceled";
        case NotificationType::expired:
            return "expired";
        case NotificationType::error:
            return "error";
    }
    return "error";
}

void FieldList::add(std::string_view field, std::string_view value) {
    views_.push_back(field);
    views_.push_back(value);
}

FieldList::FieldList(FieldList&& other) noexcept
    : nums_(other.nums_),
      nums_used_(other.nums_used_),
      overflow_(std::move(other.overflow_)),
      views_(std::move(other.views_)) {
    const char* begin = other.nums_.data();
    const char* end = begin + other.nums_used_;
    for (auto& v : views_) {
        if (v.data() >= begin && v.data() < end) {
            v = std::string_view(nums_.data() + (v.data() - begin), v.size());
        }
    }
}

void FieldList::add(std::string_view field, std::int64_t value) {
    char* at = nums_.data() + nums_used_;
    auto [end, ec] = std::to_chars(at, nums_.data() + nums_.size(), value);
    if (ec == std::errc()) {
        nums_used_ += static_cast<std::size_t>(end - at);
        add(field, std::string_view(at, static_cast<std::size_t>(end - at)));
        return;
    }
    overflow_.push_back(std::to_string(value));
    add(field, std::string_view(overflow_.back()));
}

std::vector<std::string> history_entries(std::string_view packed) {
    if (packed.empty()) return {};
    try {
        auto handle = msgpack::unpack(packed.data(), packed.size());
        return handle.get().as<std::vector<std::string>>();
    } catch (const std::exception&) {
        return {};  // a foreign or damaged history is not worth failing a task over
    }
}

std::string history_add(std::string_view packed, std::int64_t at_ms, std::string_view error,
                        std::size_t keep) {
    auto entries = history_entries(packed);
    entries.push_back(std::to_string(at_ms) + " " + std::string(error));
    if (entries.size() > keep)
        entries.erase(entries.begin(), entries.end() - static_cast<long>(keep));
    msgpack::sbuffer buf;
    msgpack::pack(buf, entries);
    return std::string(buf.data(), buf.size());
}

FieldList encode(const TaskMessage& m) {
    FieldList f;
    visit_fields(m, [&f](std::string_view field, auto value) { f.add(field, value); });
    return f;
}

FieldList encode(const Notification& n) {
    FieldList f;
    f.add("enc_version", kEncVersion);
    f.add("task_id", n.task_id);
    f.add("type", to_string(n.type));
    // Always, empty unless an error: the Go library's notification decoder requires the field
    // and a Go client crashes on an entry without it.
    f.add("err_msg", n.err_msg);
    if (!n.result.empty()) f.add("x_result", n.result);
    if (!n.server.empty()) f.add("x_server", n.server);
    return f;
}

namespace {

// Looks fields up by name. Entries have about a dozen fields, so a linear scan
// beats building a map. A repeated field is malformed: which copy is meant?
class Fields {
public:
    explicit Fields(std::span<const RawField> f) : f_(f) {}

    Result<std::optional<std::string_view>> find(std::string_view name) const {
        std::optional<std::string_view> found;
        for (const auto& [k, v] : f_) {
            if (k != name) continue;
            if (found) return malformed("field '" + std::string(name) + "' appears twice");
            found = v;
        }
        return found;
    }

    Result<std::string_view> required(std::string_view name) const {
        auto v = find(name);
        if (!v) return v.error();
        if (!*v) return malformed("missing field '" + std::string(name) + "'");
        return **v;
    }

    template <class Int>
    Result<Int> integer(std::string_view name, bool is_required) const {
        auto v = find(name);
        if (!v) return v.error();
        if (!*v) {
            if (is_required) return malformed("missing field '" + std::string(name) + "'");
            return Int{0};
        }
        Int out{};
        auto s = **v;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        if (s.empty() || ec != std::errc() || p != s.data() + s.size() || out < 0) {
            return malformed("field '" + std::string(name) + "' is not a non-negative integer: '" +
                             std::string(s.substr(0, 40)) + "'");
        }
        return out;
    }

    static Error malformed(std::string msg) { return Error(errc::protocol, std::move(msg)); }

private:
    std::span<const RawField> f_;
};

Status check_version(const Fields& f) {
    auto v = f.required("enc_version");
    if (!v) return v.error();
    if (*v != kEncVersion) {
        return Fields::malformed("unsupported enc_version '" + std::string(v->substr(0, 20)) + "'");
    }
    return Ok{};
}

}  // namespace

#define SF_TRY_ASSIGN(target, expr)       \
    do {                                  \
        auto sf_r_ = (expr);              \
        if (!sf_r_) return sf_r_.error(); \
        target = std::move(*sf_r_);       \
    } while (0)

Result<TaskMessage> decode_task(std::span<const RawField> fields) {
    Fields f(fields);
    if (auto st = check_version(f); !st) return st.error();
    TaskMessage m;
    std::string_view s;
    SF_TRY_ASSIGN(s, f.required("id"));
    if (s.empty()) return Fields::malformed("field 'id' is empty");
    m.id = std::string(s);
    SF_TRY_ASSIGN(s, f.required("client_id"));
    m.client_id = std::string(s);
    SF_TRY_ASSIGN(s, f.required("data"));
    m.data = std::string(s);
    SF_TRY_ASSIGN(m.max_retries, f.integer<std::uint32_t>("max_retries", true));
    SF_TRY_ASSIGN(m.expires_ts, f.integer<std::int64_t>("expires_ts", true));
    SF_TRY_ASSIGN(m.retry_delay_ms, f.integer<std::int64_t>("retry_delay", true));
    SF_TRY_ASSIGN(s, f.required("send_notif"));
    if (s != "0" && s != "1") {
        return Fields::malformed("field 'send_notif' must be '0' or '1', got '" +
                                 std::string(s.substr(0, 20)) + "'");
    }
    m.send_notif = s == "1";
    if (m.send_notif && m.client_id.empty()) {
        return Fields::malformed("field 'client_id' is empty but send_notif is '1'");
    }
    SF_TRY_ASSIGN(m.retries, f.integer<std::uint32_t>("retries", true));

    std::optional<std::string_view> opt;
    SF_TRY_ASSIGN(opt, f.find("x_name"));
    if (opt) m.name = std::string(*opt);
    SF_TRY_ASSIGN(opt, f.find("x_backoff"));
    if (opt) {
        m.backoff = parse_backoff(*opt);
        if (!m.backoff) {
            return Fields::malformed(
                "field 'x_backoff' must be fixed, linear or exponential, got '" +
                std::string(opt->substr(0, 20)) + "'");
        }
    }
    SF_TRY_ASSIGN(m.backoff_max_ms, f.integer<std::int64_t>("x_backoff_max", false));
    SF_TRY_ASSIGN(m.timeout_ms, f.integer<std::int64_t>("x_timeout", false));
    SF_TRY_ASSIGN(m.enqueued_ts, f.integer<std::int64_t>("x_enqueued_ts", false));
    SF_TRY_ASSIGN(m.run_at_ms, f.integer<std::int64_t>("x_run_at", false));
    SF_TRY_ASSIGN(opt, f.find("x_history"));
    if (opt) m.history = std::string(*opt);
    SF_TRY_ASSIGN(opt, f.find("x_state"));
    m.state = opt && *opt == "1";
    {
        std::optional<std::string_view> has;
        SF_TRY_ASSIGN(has, f.find("x_retention"));
        if (has) SF_TRY_ASSIGN(m.retention_ms, f.integer<std::int64_t>("x_retention", false));
    }
    SF_TRY_ASSIGN(opt, f.find("x_unique"));
    if (opt) m.unique = std::string(*opt);
    SF_TRY_ASSIGN(opt, f.find("x_error"));
    if (opt) m.error = std::string(*opt);
    return m;
}

Result<Notification> decode_notification(std::span<const RawField> fields) {
    Fields f(fields);
    if (auto st = check_version(f); !st) return st.error();
    Notification n;
    std::string_view s;
    SF_TRY_ASSIGN(s, f.required("task_id"));
    if (s.empty()) return Fields::malformed("field 'task_id' is empty");
    n.task_id = std::string(s);
    SF_TRY_ASSIGN(s, f.required("type"));
    if (s == "completed")
        n.type = NotificationType::completed;
    else if (s == "canceled")
        n.type = NotificationType::canceled;
    else if (s == "expired")
        n.type = NotificationType::expired;
    else if (s == "error")
        n.type = NotificationType::error;
    else {
        return Fields::malformed(
            "field 'type' must be completed, canceled, expired or error, got '" +
            std::string(s.substr(0, 20)) + "'");
    }
    std::optional<std::string_view> opt;
    SF_TRY_ASSIGN(opt, f.find("err_msg"));
    if (opt) n.err_msg = std::string(*opt);
    SF_TRY_ASSIGN(opt, f.find("x_result"));
    if (opt) n.result = std::string(*opt);
    SF_TRY_ASSIGN(opt, f.find("x_server"));
    if (opt) n.server = std::string(*opt);
    return n;
}

#undef SF_TRY_ASSIGN

}  // namespace streamfleet::detail
