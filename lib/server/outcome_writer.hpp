#pragma once

// Outcome writer: responsible for making each outcome durable before its entry is acked.
//
// Outcomes are completion, retry, dead letter and return; the acks of one loop turn are batched.
// Every write goes through DurableWrites, which keeps it (and resends it with backoff) while Redis
// is unreachable or out of memory, and runs the next step of a chain only once a step is in.
//
// Durability order per outcome. A notification ([notify ...], only when the client listens) goes
// out once the outcome is in Redis, so a client that hears of it finds the task's state final,
// and the ack goes last, so no ack ever stands for an outcome that was not written:
//   success  : finish states → [notify completed] → XACK, XDEL
//   canceled : finish states → [notify canceled] → XACK, XDEL
//   expired  : finish states → [notify expired] → XACK, XDEL
//   retry    : move { XADD P{Q} (retries+1) | ZADD P{Q}:delayed ; then XACK ; XDEL }
//   dead     : move { XADD P{Q}:dead ; then XACK ; XDEL } → [notify error]
//   malformed: move { XADD P{Q}:dead (raw fields + x_error) ; then XACK ; XDEL }
//   returned : move { XADD P{Q} (the same fields) ; then XACK ; XDEL }
// where "move" is one Lua script (lib/scripts/move.lua) that acks only after the write succeeded
// (a write Redis refuses for memory ends the script before its XACK), and "finish states" one
// transaction (FinalStates) for the turn's finished tasks of a queue that have a state record.
// Each step waits for the one before it; a step Redis refuses for good (not for memory or a lost
// link) ends its chain without the ack, so the entry is delivered again.
//
// Until its chain ends an entry is "held": still pending in this server's name, its lease renewed
// by the lease keeper (held()) and never claimed back by this server's own reclaimer (holds()), so
// no peer takes over and runs again a task whose outcome merely waits for Redis to take it.
//
// Notifications are plain XADD NOMKSTREAMs, one block per client and turn (redis/notes.hpp): a
// client that closed deleted its stream, and a plain XADD would recreate one nobody deletes.
// Clients of the Go library create theirs lazily and clean up by heartbeat, so with
// Notify::always (Go-compatible mode) the stream is written regardless.
//
// A crash between the steps can duplicate a notification or a run; it can never lose the task,
// because the entry stays in the PEL until its XACK. The dead path's notification follows the
// move that acked the entry: a crash right between those loses that notification only (the dead
// letter and the state record are written).

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/script_calls.hpp"
#include "server/durable_writes.hpp"
#include "server/final_states.hpp"
#include "redis/notes.hpp"
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
    /// Whether a notification is written when its client's stream does not exist.
    enum class Notify { if_listening, always };

    OutcomeWriter(ServerContext& ctx, Queues queues, Hooks hooks,
                  Notify notify = Notify::if_listening);

    void start() {}
    /// Closes the turn-end flusher and the resend timer; kept writes are given up (their entries
    /// stay in the PEL and are delivered again). Loop thread; idempotent.
    void stop();
    /// Writes this turn's batched acks and final states now, and resends kept writes.
    void tick();

    /// Writes issued and not yet answered, plus acks batched and not yet flushed.
    std::size_t pending() const noexcept { return writes_.outstanding() + unflushed_; }
    /// Writes waiting for their next resend (Redis refused them for memory, or was away).
    std::size_t kept() const noexcept { return writes_.kept(); }
    /// Entry ids of `q` whose outcome is being written: pending, leased to this server.
    std::vector<std::string> held(const QueueContext& q) const;
    bool holds(const QueueContext& q, std::string_view entry_id) const;

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
    // The finished tasks of one queue and loop turn, written together: states, notes (one block
    // per client), acks.
    struct Batch {
        std::vector<std::string> acks;
        Notes notes{false};
        // How its tasks ended, for P{Q}:finished: "completed 3 expired 1" (ack.lua).
        std::map<std::string, std::uint32_t, std::less<>> ended;
    };
    // One batch on its way: each step starts when the one before it is in Redis.
    struct Chain {
        std::size_t queue = 0;
        std::vector<std::string> ids;
        std::string ended;  // Batch::ended as ack.lua takes it
        std::optional<redis::Block> states;
        std::vector<redis::Block> notes;
        std::size_t notes_left = 0;
        bool note_refused = false;
    };
    using ChainPtr = std::shared_ptr<Chain>;

    void move(const Job& job, const std::string& dest, calls::Move::To to,
              std::span<const std::string_view> payload, std::string what, StateChange sc,
              std::optional<redis::Block> note = std::nullopt);
    std::optional<redis::Block> notification(const TaskMessage& msg, NotificationType type,
                                           std::string_view err) const;
    std::string receiver_of(const TaskMessage& msg) const;
    void finish(const Job& job, NotificationType type, std::string_view state);
    void flush_acks();
    void write_states(const ChainPtr& c);
    void write_notes(const ChainPtr& c);
    void write_acks(const ChainPtr& c);
    void dead_letter_raw(const Job& job, const std::string& why, std::string what,
                         const TaskMessage* msg, std::optional<redis::Block> note);
    void hold(std::size_t queue, const std::string& entry_id);
    void release(std::size_t queue, const std::vector<std::string>& entry_ids);

    ServerContext& ctx_;
    Queues queues_;
    std::vector<FinalStates> states_;  // per queue: this turn's, and the buckets they go to
    Hooks hooks_;
    Notify notify_;
    std::size_t unflushed_ = 0;   // acks batched, not yet written
    std::vector<Batch> batches_;  // by QueueContext::index
    std::vector<std::size_t> to_flush_;
    // By QueueContext::index: held entry id → how many chains hold it (a redelivery of an entry
    // whose chain ended badly may start a second one).
    std::vector<std::unordered_map<std::string, int>> held_;
    DurableWrites writes_;  // after hooks_, whose `changed` it calls
    TurnEnd flusher_;
};

}  // namespace streamfleet::detail
