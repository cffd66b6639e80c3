#include "core/script_calls.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/stream_id.hpp"

namespace streamfleet::detail::calls {

ScriptCall schedule(const QueueKeys& k, std::int64_t due_ms, std::string_view member,
                    const Record* record, std::string_view ledger) {
    ScriptCall c(scripts::schedule);
    c.key(k.delayed()).key(k.nudge());
    if (record) {
        c.key(k.task(record->task_id)).key(k.done());
    } else {
        c.key(ledger);
    }
    c.arg(due_ms).arg(member).arg(record ? "record" : "ledger");
    if (record) {
        c.arg(record->created_ms).arg(record->notify).arg(record->retention_ms);
        c.arg(record->task_id);
    }
    return c;
}

ScriptCall unique_claim(const QueueKeys& k, std::string_view unique_key, std::string_view task_id,
                        std::int64_t window_ms) {
    ScriptCall c(scripts::unique_claim);
    c.key(k.unique(unique_key)).arg(task_id).arg(window_ms);
    return c;
}

ScriptCall unique_release(const QueueKeys& k, std::string_view unique_key,
                          std::string_view task_id) {
    ScriptCall c(scripts::unique_release);
    c.key(k.unique(unique_key)).arg(task_id);
    return c;
}

ScriptCall cancel(const QueueKeys& k, std::string_view task_id, std::int64_t now_ms) {
    ScriptCall c(scripts::cancel);
    c.key(k.task(task_id)).key(k.delayed()).key(k.stream()).key(k.cancels()).key(k.done());
    c.key(k.index()).key(k.finished());
    c.arg(now_ms).arg(kServerGroup).arg(task_id);
    return c;
}

ScriptCall get(const QueueKeys& k, std::string_view task_id, std::int64_t now_ms) {
    ScriptCall c(scripts::get);
    c.key(k.task(task_id)).key(k.stream()).key(k.done()).key(k.index());
    c.arg(kServerGroup).arg(task_id).arg(now_ms);
    return c;
}

ScriptCall promote(const QueueKeys& k, std::int64_t now_ms, std::int64_t limit) {
    ScriptCall c(scripts::promote);
    c.key(k.delayed()).key(k.stream()).key(k.task_prefix()).key(k.dead()).key(k.finished());
    c.arg(now_ms).arg(limit);
    return c;
}

ScriptCall forget(const QueueKeys& k, std::string_view consumer, std::int64_t dead_after_ms,
                  std::int64_t idle_ms) {
    ScriptCall c(scripts::forget);
    c.key(k.stream()).key(k.servers()).arg(kServerGroup).arg(consumer);
    c.arg(dead_after_ms).arg(idle_ms);
    return c;
}

// Beside the registry, in the queue's slot.
std::string server_token_key(const QueueKeys& k, std::string_view server_id) {
    return k.servers() + ":" + std::string(server_id);
}

ScriptCall beat(const QueueKeys& k, std::string_view server_id, std::string_view token,
                std::int64_t dead_after_ms) {
    ScriptCall c(scripts::beat);
    c.key(k.servers()).key(server_token_key(k, server_id));
    c.arg(server_id).arg(token).arg(dead_after_ms);
    return c;
}

ScriptCall leave(const QueueKeys& k, std::string_view server_id, std::string_view token) {
    ScriptCall c(scripts::leave);
    c.key(k.stream()).key(k.servers()).key(server_token_key(k, server_id));
    c.arg(kServerGroup).arg(server_id).arg(token);
    return c;
}

ScriptCall dead(const QueueKeys& k, std::int64_t dead_after_ms) {
    ScriptCall c(scripts::dead);
    c.key(k.servers()).arg(dead_after_ms);
    return c;
}

ScriptCall claim(const QueueKeys& k, std::string_view consumer, ClaimWhy why,
                 std::string_view owner, std::int64_t min_idle_ms, std::int64_t dead_after_ms,
                 std::span<const std::string> entry_ids) {
    ScriptCall c(scripts::claim);
    c.key(k.stream()).key(k.servers()).arg(kServerGroup).arg(consumer);
    c.arg(why == ClaimWhy::own ? "own" : why == ClaimWhy::dead ? "dead" : "idle");
    c.arg(owner).arg(min_idle_ms).arg(dead_after_ms).args(entry_ids);
    return c;
}

ScriptCall ack(const QueueKeys& k, std::span<const std::string> entry_ids,
               std::string_view ended) {
    std::vector<std::string> sorted(entry_ids.begin(), entry_ids.end());
    std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) {
        return stream_id_less(a, b);
    });
    ScriptCall c(scripts::ack);
    c.key(k.stream()).key(k.finished()).arg(kServerGroup).arg(ended).args(sorted);
    return c;
}

ScriptCall keep(const QueueKeys& k, std::string_view consumer,
                std::span<const std::string> entry_ids) {
    ScriptCall c(scripts::keep);
    c.key(k.stream()).arg(kServerGroup).arg(consumer).args(entry_ids);
    return c;
}

ScriptCall move(const QueueKeys& k, const Move& m) {
    bool record = !m.task_id.empty() && !m.state.empty();
    ScriptCall c(scripts::move);
    // KEYS[4] is named even without a record: the script reads it only when
    // ARGV[4] is set, and the prefix keeps the call in the queue's slot.
    c.key(m.dest).key(k.stream()).key(k.nudge()).key(record ? k.task(m.task_id) : k.task_prefix());
    c.key(k.index()).key(k.finished());
    c.arg(kServerGroup).arg(m.entry_id).arg(m.to == Move::To::delayed ? "zadd" : "xadd");
    c.arg(record ? m.state : std::string_view()).arg(m.now_ms).arg(m.error);
    c.arg(static_cast<std::int64_t>(m.retries)).arg(record ? m.retention_ms : 0);
    c.arg(record ? m.history : std::string_view()).arg(m.ends_as);
    c.args(m.payload);
    return c;
}

ScriptCall requeue_dead(const QueueKeys& k, std::span<const std::string> entry_ids,
                        std::int64_t now_ms) {
    ScriptCall c(scripts::requeue_dead);
    c.key(k.dead()).key(k.stream()).key(k.task_prefix()).arg(now_ms).args(entry_ids);
    return c;
}

ScriptCall purge_dead(const QueueKeys& k) {
    ScriptCall c(scripts::purge_dead);
    c.key(k.dead());
    return c;
}

}  // namespace streamfleet::detail::calls
