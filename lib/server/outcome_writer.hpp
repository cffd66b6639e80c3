#pragma once

// Outcome writer: responsible for making each outcome durable before its entry is acked.
//
// Outcomes are completion, retry, dead letter and return; the acks of one loop turn are batched.
// Every write goes through DurableWrites, which keeps it while Redis is unreachable.
//
// Durability order per outcome. A notification ([notify ...], only when the client listens) goes
// out once the outcome is in Redis, so a client that hears of it finds the task's state final:
//   success  : finish states → [notify completed], XACK, XDEL
//   canceled : finish states → [notify canceled], XACK, XDEL
//   expired  : finish states → [notify expired], XACK, XDEL
//   retry    : move { XADD P{Q} (retries+1) | ZADD P{Q}:delayed ; then XACK ; XDEL }
//   dead     : move { XADD P{Q}:dead ; then XACK ; XDEL } → [notify error]
//   malformed: move { XADD P{Q}:dead (raw fields + x_error) ; then XACK ; XDEL }
//   returned : move { XADD P{Q} (the same fields) ; then XACK ; XDEL }
// where "move" is one Lua script (lib/scripts/move.lua) that acks only after the write succeeded,
// and "finish states" one lib/scripts/finish.lua call for the turn's finished tasks of a queue
// that have a state record (without one, the notification, XACK and XDEL leave at once).
// A crash between the steps can duplicate a notification or a run; it can never lose the task,
// because the entry stays in the PEL until its XACK.

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/script_calls.hpp"
#include "server/durable_writes.hpp"
#include "server/job.hpp"

namespace streamfleet::detail {

class OutcomeWriter {
public:
    struct Hooks {
        /// The count of pending writes changed (shutdown waits for it to reach 0).
        std::function<void()> changed;
        /// A retry now waits in P{Q}:delayed until `due` (unix ms): the promoter should know.
        std::function<void(QueueContext&, std::int64_t due)> delayed;
    };

    OutcomeWriter(ServerContext& ctx, Queues queues, Hooks hooks);

    void start() {}
    /// Closes the turn-end flusher and the resend timer; kept writes are given up (their entries
    /// stay in the PEL and are delivered again). Loop thread; idempotent.
    void stop();
    /// Writes this turn's batched acks and final states now, and resends kept writes.
    void tick();

    /// Writes issued and not yet answered, plus acks batched and not yet flushed.
    std::size_t pending() const noexcept { return writes_.outstanding() + unflushed_; }

    void completed(const Job& job);
    void canceled(const Job& job);
    void expired(const Job& job);
    /// Back to its stream as it was read, without spending a retry (shutdown).
    void returned(const Job& job);
    /// The handler failed and the task has retries left: written again (now or delayed).
    void retry(const Job& job, const std::string& error);
    /// The handler failed for good (no retries left, or Outcome::dead).
    void dead(const Job& job, const std::string& error);
    /// The entry does not decode: dead-lettered with its raw fields and the reason.
    void malformed(const Job& job, const std::string& reason);
    /// Delivered more than max_deliveries times: it keeps killing its servers.
    void poison(const Job& job, std::uint64_t deliveries);

private:
    // A state change riding along in the move script when the task has a state record: `state`
    // is 'failed', 'ready' or 'dead' (see lib/scripts/move.lua).
    struct StateChange {
        const TaskMessage* msg = nullptr;
        std::string_view state{};
        std::string_view error{};
        std::uint32_t retries = 0;
    };
    // The acks and final states of one queue, written together at the end of the turn.
    struct Batch {
        std::vector<std::string> acks;
        std::optional<calls::FinishBatch> states;
        std::vector<std::vector<std::string>> notes;  // of the tasks in `states`
    };

    using Argv = std::vector<std::string>;

    void move(const Job& job, const std::string& dest, calls::Move::To to,
              std::span<const std::string_view> payload, std::string what, StateChange sc,
              Argv note = {});
    Argv notification(const TaskMessage& msg, NotificationType type, std::string_view err) const;
    void finish(const Job& job, NotificationType type, std::string_view state);
    void flush_acks();
    void write_acks(const QueueContext& q, const std::vector<std::string>& ids);
    void dead_letter_raw(const Job& job, const std::string& why, std::string what,
                         const TaskMessage* msg, Argv note);

    ServerContext& ctx_;
    Queues queues_;
    Hooks hooks_;
    std::size_t unflushed_ = 0;   // acks batched, not yet written
    std::vector<Batch> batches_;  // by QueueContext::index
    std::vector<std::size_t> to_flush_;
    DurableWrites writes_;  // after hooks_, whose `changed` it calls
    TurnEnd flusher_;
};

}  // namespace streamfleet::detail
