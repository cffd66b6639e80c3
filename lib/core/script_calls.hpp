#pragma once

// Typed builders for every script call (lib/scripts/*.lua): the names of the
// parts in, a ScriptCall with KEYS and ARGV in the order the script's contract
// gives out. Pure: no I/O, so each can be checked alone.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.hpp"
#include "core/scripts.hpp"

namespace streamfleet::detail::calls {

/// A delayed task's state record, written with its schedule.
struct Record {
    std::string_view task_id;
    std::int64_t created_ms = 0;
    std::string_view notify;  // the tracking client's id, "" when untracked
    std::int64_t retention_ms = kDefaultRetentionMs;
};

/// schedule.lua: `member` due at `due_ms`, with its record when `record` is
/// set; else noted in `ledger` (P{Q}:sent:CLIENT), and the sender appends the
/// task's number, the floor and the ledger's ttl (ledger_args) when it sends,
/// since only then are they known.
ScriptCall schedule(const QueueKeys& k, std::int64_t due_ms, std::string_view member,
                    const Record* record, std::string_view ledger = {});

ScriptCall unique_claim(const QueueKeys& k, std::string_view unique_key, std::string_view task_id,
                        std::int64_t window_ms);
ScriptCall unique_release(const QueueKeys& k, std::string_view unique_key,
                          std::string_view task_id);

ScriptCall cancel(const QueueKeys& k, std::string_view task_id, std::int64_t now_ms);
ScriptCall get(const QueueKeys& k, std::string_view task_id, std::int64_t now_ms);

ScriptCall promote(const QueueKeys& k, std::int64_t now_ms, std::int64_t limit);
/// forget.lua: drop `consumer` (beat older than `dead_after_ms` by Redis's clock, nothing
/// pending, consumer idle at least `idle_ms`).
ScriptCall forget(const QueueKeys& k, std::string_view consumer, std::int64_t dead_after_ms,
                  std::int64_t idle_ms);
/// The key holding the token of the server that owns `server_id` in a queue.
std::string server_token_key(const QueueKeys& k, std::string_view server_id);
/// beat.lua: `server_id`'s heartbeat, holding the id with `token` for `dead_after_ms`.
ScriptCall beat(const QueueKeys& k, std::string_view server_id, std::string_view token,
                std::int64_t dead_after_ms);
/// leave.lua: a stopping server's exit (removed, or departed with leftovers).
ScriptCall leave(const QueueKeys& k, std::string_view server_id, std::string_view token);
/// dead.lua: servers whose beat is older than `dead_after_ms` by Redis's clock.
ScriptCall dead(const QueueKeys& k, std::int64_t dead_after_ms);
/// claim.lua: why entries are taken over (see the script).
enum class ClaimWhy { own, dead, idle };
ScriptCall claim(const QueueKeys& k, std::string_view consumer, ClaimWhy why,
                 std::string_view owner, std::int64_t min_idle_ms, std::int64_t dead_after_ms,
                 std::span<const std::string> entry_ids);
/// ack.lua: ack `entry_ids` (finished) and take every entry nobody needs out of the stream;
/// the ids go sorted, as the script needs them.
/// `ended`: how the batch's tasks ended, counted into P{Q}:finished for the entries acked
/// ("completed 3 expired 1"; "" = count nothing).
ScriptCall ack(const QueueKeys& k, std::span<const std::string> entry_ids,
               std::string_view ended = "");
ScriptCall keep(const QueueKeys& k, std::string_view consumer,
                std::span<const std::string> entry_ids);

/// move.lua: where a read entry goes, and the state its record takes.
struct Move {
    enum class To { stream, delayed };
    /// The destination key: P{Q}, P{Q}:dead (To::stream) or P{Q}:delayed (To::delayed).
    std::string_view dest;
    To to = To::stream;
    std::string_view entry_id;
    /// The XADD field/value pairs (To::stream), or {score, member} (To::delayed).
    std::span<const std::string_view> payload;
    /// The task whose record changes; "" (or an empty state) leaves records alone.
    std::string_view task_id{};
    std::string_view state{};  // 'failed' | 'ready' | 'dead'
    std::int64_t now_ms = 0;
    std::string_view error{};
    std::uint32_t retries = 0;
    std::int64_t retention_ms = 0;
    /// The task's packed x_history (failed runs), kept in its record so get() shows it.
    std::string_view history{};
    /// "dead" when this move ends the task (counted into P{Q}:finished), else "".
    std::string_view ends_as{};
};
ScriptCall move(const QueueKeys& k, const Move& m);

/// requeue_dead.lua: tracked tasks' records become "ready" again, stamped `now_ms`.
ScriptCall requeue_dead(const QueueKeys& k, std::span<const std::string> entry_ids,
                        std::int64_t now_ms);
ScriptCall purge_dead(const QueueKeys& k);

}  // namespace streamfleet::detail::calls
