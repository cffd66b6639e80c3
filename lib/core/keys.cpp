#include "core/keys.hpp"

namespace streamfleet::detail {

namespace {

Error bad(std::string_view what, std::string_view value, std::string_view rule) {
    return Error(errc::invalid_argument,
                 std::string(what) + " '" + std::string(value.substr(0, 64)) +
                     (value.size() > 64 ? "...'" : "'") + " " + std::string(rule));
}

}  // namespace

Status validate_queue_name(std::string_view q) {
    if (q.empty()) return Error(errc::invalid_argument, "queue name is empty");
    if (q.size() > kMaxQueueName) {
        return bad("queue name", q,
                   "is " + std::to_string(q.size()) + " bytes; the limit is " +
                       std::to_string(kMaxQueueName));
    }
    for (unsigned char c : q) {
        if (c == '{' || c == '}') return bad("queue name", q, "contains a brace ('{' or '}')");
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

QueueKeys::QueueKeys(std::string_view prefix, std::string_view queue) : queue_(queue) {
    stream_.reserve(prefix.size() + queue.size() + 2);
    stream_.append(prefix).append("{").append(queue).append("}");
    delayed_ = stream_ + ":delayed";
    dead_ = stream_ + ":dead";
    clients_ = stream_ + ":clients";
    servers_ = stream_ + ":servers";
    nudge_ = stream_ + ":nudge";
    cancels_ = stream_ + ":cancels";
    task_prefix_ = stream_ + ":task:";
}

std::string receiver_key(std::string_view prefix, std::string_view client_id) {
    std::string k;
    k.reserve(prefix.size() + client_id.size() + 10);
    k.append(prefix).append("receiver:{").append(client_id).append("}");
    return k;
}

}  // namespace streamfleet::detail
