#include "core/keys.hpp"

namespace streamfleet::detail {

namespace {

Error bad(std::string_view what, std::string_view value, std::string_view rule) {
    return Error(errc::invalid_argument,
                 std::string(what) + " '" + std::string(value.substr(0, 64)) +
                     (value.size() > 64 ? "...'" : "'") + " " + std::string(rule));
}

// Whether `q` holds exactly one '{', then exactly one '}', with something between: one hash tag.
bool one_hash_tag(std::string_view q) {
    auto open = q.find('{');
    auto close = q.find('}');
    return open != std::string_view::npos && close != std::string_view::npos && close > open + 1 &&
           q.find('{', open + 1) == std::string_view::npos &&
           q.find('}', close + 1) == std::string_view::npos;
}

}  // namespace

Status validate_queue_name(std::string_view q, KeyStyle style) {
    if (q.empty()) return Error(errc::invalid_argument, "queue name is empty");
    if (q.size() > kMaxQueueName) {
        return bad("queue name", q,
                   "is " + std::to_string(q.size()) + " bytes; the limit is " +
                       std::to_string(kMaxQueueName));
    }
    bool tag_ok = style == KeyStyle::go && one_hash_tag(q);
    for (unsigned char c : q) {
        if ((c == '{' || c == '}') && !tag_ok) {
            return bad("queue name", q,
                       style == KeyStyle::go
                           ? "has a brace ('{' or '}') that does not form one hash tag '{...}'"
                           : "contains a brace ('{' or '}')");
        }
        if (c <= 0x20 || c == 0x7f) {
            return bad("queue name", q, "contains a space or control character");
        }
    }
    return Ok{};
}

Status validate_prefix(std::string_view p) {
    if (p.size() > 100) return bad("key prefix", p, "is longer than 100 bytes");
    if (p.find_first_of("{}") != std::string_view::npos) {
        return bad("key prefix", p, "contains a brace ('{' or '}')");
    }
    return Ok{};
}

QueueKeys::QueueKeys(std::string_view prefix, std::string_view queue, KeyStyle style)
    : queue_(queue) {
    // `base` names the slot every other key of the queue shares with the stream.
    std::string base;
    if (style == KeyStyle::native) {
        stream_.reserve(prefix.size() + queue.size() + 2);
        stream_.append(prefix).append("{").append(queue).append("}");
        base = stream_;
        clients_ = base + ":clients";
    } else {
        stream_.append(prefix).append(queue);
        base = queue.find('{') != std::string_view::npos ? stream_ : "{" + stream_ + "}";
        clients_ = stream_ + ":receivers";
    }
    delayed_ = base + ":delayed";
    dead_ = base + ":dead";
    servers_ = base + ":servers";
    nudge_ = base + ":nudge";
    cancels_ = base + ":cancels";
    task_prefix_ = base + ":task:";
    unique_prefix_ = base + ":unique:";
    sent_prefix_ = base + ":sent:";
    done_ = base + ":done";
    finished_ = base + ":finished";
    index_ = base + ":index";
}

std::string receiver_key(std::string_view prefix, std::string_view client_id, KeyStyle style) {
    std::string k;
    k.reserve(prefix.size() + client_id.size() + 11);
    if (style == KeyStyle::go) return k.append(prefix).append("receiver:").append(client_id);
    k.append(prefix).append("receiver:{").append(client_id).append("}");
    return k;
}

std::string queue_registry_key(std::string_view prefix) {
    return std::string(prefix).append("queues");
}

}  // namespace streamfleet::detail
