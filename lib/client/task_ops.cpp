// TaskOps: the client's calls that wait for Redis: cancel, get, and claiming a uniqueness key.
#include "client/task_ops.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>

#include "core/keys.hpp"
#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "core/wire.hpp"
#include "redis/notes.hpp"
#include "redis/sync.hpp"

namespace streamfleet::detail::client {

namespace r = redis;

namespace {

std::int64_t to_i64(const std::string& s) { return std::strtoll(s.c_str(), nullptr, 10); }

TaskState parse_state(std::string_view s) {
    for (auto st : {TaskState::delayed, TaskState::ready, TaskState::active, TaskState::completed,
                    TaskState::failed, TaskState::dead, TaskState::expired, TaskState::canceled}) {
        if (to_string(st) == s) return st;
    }
    return TaskState::unknown;
}

}  // namespace

CancelResult TaskOps::cancel(std::string_view queue, std::string_view id) {
    const auto& keys = ctx_.keys_for(queue);
    auto reply = r::call(ctx_.rt, ctx_.topo, calls::cancel(keys, id, ctx_.clock.now_ms())).value();
    if (!reply.is_array() || reply.size() < 1) {
        throw ProtoError("cancel: unexpected reply " + reply.debug_string());
    }
    auto what = std::string(reply[0].str());
    if (what == "unknown") {
        throw NotFound("no task '" + std::string(id) + "' in queue '" + std::string(queue) +
                       "' (never enqueued with state tracking, or finished longer ago than its "
                       "retention)");
    }
    auto tracker = reply.size() > 1 ? std::string(reply[1].str()) : std::string();
    CancelResult result = what == "delayed"  ? CancelResult::delayed
                          : what == "ready"  ? CancelResult::ready
                          : what == "active" ? CancelResult::active
                                             : CancelResult::finished;
    if ((result == CancelResult::delayed || result == CancelResult::ready) && !tracker.empty()) {
        // Nobody else will tell the tracking client: no server has the task.
        Notification n{std::string(id), NotificationType::canceled, {}, {}, {}};
        auto f = encode(n);
        auto key =
            receiver_key(ctx_.options.prefix, tracker, key_style(ctx_.options.go_compatible));
        // As the servers notify (redis/notes.hpp): NOMKSTREAM, since a tracking client that has
        // closed deleted its stream, and a plain XADD would recreate one nothing deletes.
        auto note = note_block(key, f.views(), ctx_.options.go_compatible);
        if (auto sent = r::call(ctx_.rt, ctx_.topo, note); !sent) {
            log().warn("client {}: canceled task {} but could not notify its client {}: {}",
                       ctx_.id, id, tracker, sent.error().message());
        }
    }
    return result;
}

TaskInfo TaskOps::get(std::string_view queue, std::string_view id) {
    const auto& keys = ctx_.keys_for(queue);
    auto reply = r::call(ctx_.rt, ctx_.topo, calls::get(keys, id, ctx_.clock.now_ms())).value();
    TaskInfo info;
    info.id = std::string(id);
    if (reply.is_nil()) return info;
    std::map<std::string, std::string, std::less<>> h;
    for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
        h[std::string(reply[i].str())] = std::string(reply[i + 1].str());
    }
    info.state = parse_state(h["state"]);
    if (h.count("active")) info.state = TaskState::active;
    info.retries = static_cast<std::uint32_t>(to_i64(h["retries"]));
    info.error = h["error"];
    info.created_ms = to_i64(h["created"]);
    info.finished_ms = to_i64(h["finished"]);
    // Records leave out what the hot path need not write (see
    // lib/scripts/enqueue.lua and server/final_states.hpp): the last change is
    // the latest of these.
    info.updated_ms = std::max({to_i64(h["updated"]), info.created_ms, info.finished_ms});
    // Finished records keep their last run_at (not cleared, to save Redis a
    // command per task): it means something only while the task waits.
    if (info.state == TaskState::delayed || info.state == TaskState::failed) {
        info.run_at_ms = to_i64(h["run_at"]);
    }
    info.history = history_entries(h["history"]);
    return info;
}

// The claim is idempotent by task id (lib/scripts/unique_claim.lua), so a claim whose reply was
// lost (Redis answered after our timeout, or the link dropped after the command left) is sent again
// for the same task until Redis answers, for a few command timeouts. Without that the key stayed
// held by a task that never existed and the caller's retry was refused as a duplicate of it. If
// Redis stays silent, the key is given back when possible and the error goes to the caller.
void TaskOps::claim_unique(const QueueKeys& keys, const TaskMessage& m, std::string_view holder,
                           std::chrono::milliseconds ttl) {
    auto call = calls::unique_claim(keys, m.unique, holder, ttl.count());
    auto until = std::chrono::steady_clock::now() +
                 std::max<std::chrono::milliseconds>(4 * ctx_.options.command_timeout,
                                                     std::chrono::seconds(2));
    auto res = r::call(ctx_.rt, ctx_.topo, call);
    while (!res.ok() && res.error().is_transient() && std::chrono::steady_clock::now() < until) {
        log().debug("client {}: claim of unique_key '{}' for {} unanswered ({}); sending it again",
                    ctx_.id, m.unique, m.id, res.error().message());
        res = r::call(ctx_.rt, ctx_.topo, call);
    }
    if (!res.ok()) {
        if (res.error().is_transient()) release_unique(keys, m, holder);
        throw_error(res.error());
    }
    const auto& reply = *res;
    if (reply.size() >= 1 && reply[0].integer() == 1) return;
    std::string held_by =
        reply.size() >= 2 && reply[1].is_string() ? std::string(reply[1].str()) : "";
    if (m.unique == "id:" + m.id) {
        throw Duplicate("task id '" + m.id + "' is taken: a task with this id was enqueued before",
                        m.id);
    }
    throw Duplicate("a task with unique_key '" + m.unique +
                        "' was enqueued within its unique_ttl: " +
                        (held_by.empty() ? "(window just ended; try again)" : held_by),
                    held_by);
}

void TaskOps::release_unique(const QueueKeys& keys, const TaskMessage& m, std::string_view holder) {
    (void)r::call(ctx_.rt, ctx_.topo, calls::unique_release(keys, m.unique, holder));
}

}  // namespace streamfleet::detail::client
