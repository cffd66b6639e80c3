// Encoder: a task's wire form: batched add- or enqueue-script args, or a schedule call.
#pragma once

// Pure: no I/O and no shared state, so the caller's thread encodes (see
// outgoing.hpp) and a test can check the bytes alone.

#include <span>
#include <string>
#include <string_view>

#include "client/outgoing.hpp"
#include "core/keys.hpp"
#include "core/wire.hpp"

namespace streamfleet::detail::client {

/// The task's wire form, by what it needs: a delayed task (run_at_ms set) is
/// one calls::schedule; a task with state tracking is a batched
/// scripts::enqueue part (the XADD, and the task's id indexed to its entry,
/// written together); any other
/// is a batched scripts::add part (the XADD noted in the client's ledger).
/// `keys` must outlive the result.
Outgoing encode_outgoing(const TaskMessage& m, const QueueKeys& keys, std::size_t bytes);

/// The key that routes the command carrying `task`.
std::string_view route_key(const Outgoing& task);

/// The most tasks, and bytes of their arguments, one scripts::enqueue call carries.
inline constexpr std::size_t kMaxBatch = 256;
inline constexpr std::size_t kMaxBatchBytes = std::size_t{1} << 20;

/// Whether `next` may join a batch whose first task is `first`, holding
/// `count` tasks of `bytes`: both batched the same way, one stream (and one
/// ledger), within the limits.
bool joins_batch(const Outgoing& first, std::size_t count, std::size_t bytes, const Outgoing& next);

/// The RESP command that carries `tasks`: one delayed task (Form::script), or
/// a run of Form::batched or Form::noted tasks of one stream as one
/// scripts::enqueue call, or a scripts::add call for noted tasks in doubt
/// (the scripts skip what an earlier send added), or else as a MULTI/EXEC
/// block of their XADDs and the ledger's notes. `by_body`: EVAL with the script's
/// text instead of EVALSHA (after NOSCRIPT). `floor`: every task of this client
/// numbered below it is settled (see lib/scripts/add.lua). Built in `scratch`,
/// which the caller keeps to reuse its memory; the view lives as long as it.
/// Whether command_for sends `tasks` as plain commands in a MULTI ... EXEC
/// block: Form::noted tasks none of which is in doubt. (Tasks with state
/// tracking stay with the enqueue script: the index needs the entry id the
/// XADD makes, and a second step would leave a window in which cancel()
/// cannot find the entry it must remove.)
bool sent_plain(std::span<Outgoing* const> tasks);
/// The EXEC reply of such a block holds the floor's ZREMRANGEBYSCORE, each
/// task's XADD, the ledger's ZADD and PEXPIRE.
inline constexpr std::size_t kPlainExtraReplies = 5;  // MULTI, ZREMRANGEBYSCORE, ZADD, PEXPIRE, EXEC
/// How many replies command_for's command asks for (redis::CommandOptions::replies).
unsigned replies_for(std::span<Outgoing* const> tasks);

std::string_view command_for(std::span<Outgoing* const> tasks, bool by_body, std::uint64_t floor,
                             std::string& scratch);

}  // namespace streamfleet::detail::client
