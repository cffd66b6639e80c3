// Outbox: sends accepted tasks in order until Redis confirms or refuses each, resending after
// outages.
#pragma once

// Tasks wait in the outbox, in acceptance order, until Redis confirms their
// command. While the link works they are sent at once (pipelined). What a
// failure means depends on its kind (Error::is_transient):
//
// - A link failure (connection lost, timeout, a cluster redirection, LOADING)
//   marks the link down: nothing new is sent, the failed tasks are marked
//   unsent, and when the connection is back (its ready edge, or a retry every
//   500 ms) every unsent task is sent again in outbox order -- so a buffer
//   filled during an outage drains in order. A lost reply may mean the command
//   did run; its resend is harmless all the same: the scripts skip a task
//   whose state exists (indexed, a record, or finished), or, for a task
//   without state tracking, whose number is in
//   the client's ledger (P{Q}:sent:CLIENT, lib/scripts/add.lua). The outbox
//   numbers tasks in the order it takes them, so the oldest task still waiting
//   is the floor below which every note may go. Only such resends (tasks "in
//   doubt") pay for the check: a first send of tasks without a record is a
//   plain MULTI/EXEC block that adds and notes them, since a resend needs a
//   new connection, and so reaches Redis after the send it repeats.
// - A refusal (any other error reply: NOPERM, WRONGTYPE, ERR for a payload
//   over proto-max-bulk-len, a script error) will not change by resending. A
//   command carrying one task refuses that task: it leaves the outbox (and the
//   spool) and the client tells the caller (`refused`). A batch carrying
//   several is split: each of its tasks is sent alone, so only the bad one is
//   refused and the others go through.
// - OOM is a refusal that memory coming back can undo: the tasks are resent
//   with backoff (0.5 s doubling to 5 s) until they have been refused for
//   `oom_patience`, then refused. Other tasks are not held up meanwhile.
//
// An accepted task is never dropped silently while the client is open.
//
// Once every task has settled, the notes in the ledgers are of no more use:
// a second later, if nothing new has come, they are dropped (a send's floor
// drops them too, but after a burst no send may come for a long time, and the
// ledger would hold its last window of notes until it expires in 24 h).
//
// Confirmations are counted and handed on once per loop turn (a TurnEnd), so a
// burst of replies wakes the callers waiting for room once, not per task.
// Loop thread only.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/context.hpp"
#include "client/outgoing.hpp"
#include "client/spool.hpp"
#include "core/error.hpp"
#include "redis/replica_wait.hpp"
#include "redis/reply.hpp"

namespace streamfleet::detail::client {

class Outbox {
public:
    /// Gets the number and bytes (Outgoing::bytes) of the tasks Redis
    /// confirmed during one loop turn.
    /// Refused tasks count as confirmed here: they leave the buffer too.
    using Confirmed = std::function<void(std::size_t tasks, std::size_t bytes)>;
    /// Gets each task Redis refused, with the refusal, once.
    using RefusedFn = std::function<void(Outgoing& task, const Error& why)>;

    /// On the loop thread. `spool` (may be null) hears of every confirmed or
    /// refused task.
    Outbox(ClientContext& ctx, Spool* spool, Confirmed confirmed, RefusedFn refused = {});
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;

    /// Takes the tasks (moved out of `batch`) and sends them unless the link is down.
    void submit(std::vector<Outgoing>& batch);

    /// The shared link's ready edge: resends at once if the link was down.
    void link_up();
    /// No resends from now on (close has begun); what is in flight may still confirm.
    void stop();
    /// Hands on confirmations not yet reported and closes the timers. Last
    /// call; replies arriving later are ignored.
    void close();

    /// Tasks not yet confirmed.
    std::size_t size() const noexcept { return tasks_.size(); }
    bool link_down() const noexcept { return link_down_; }

private:
    void transmit(const std::vector<Outgoing*>& tasks);
    void send(std::vector<Outgoing*> tasks, bool by_body);
    void on_reply(std::vector<Outgoing*>& tasks, bool by_body, Result<redis::Reply> res);
    void on_plain_reply(std::vector<Outgoing*>& tasks, const redis::Reply& exec);
    void confirm(Outgoing& o);
    void settle(Outgoing& o);
    void refuse(Outgoing& o, const Error& why);
    void hold_for_memory(std::vector<Outgoing*>& tasks, const Error& why);
    void resend_in(std::chrono::steady_clock::duration after);
    void resume();
    /// Drops the settled tasks from the front; arms the tidy-up once all have.
    void settled();
    void tidy_ledgers();

    ClientContext& ctx_;
    Spool* spool_;
    Confirmed confirmed_;
    RefusedFn refused_;
    // Owns every task until Redis confirms it. Commands in flight point at
    // tasks in here: a deque keeps elements in place as its ends grow and
    // shrink, and a task leaves only once its reply is in.
    std::deque<Outgoing> tasks_;
    bool link_down_ = false;
    bool stopping_ = false;
    std::unique_ptr<Timer> resend_;
    std::chrono::steady_clock::time_point resend_due_{};
    std::chrono::milliseconds oom_backoff_{0};  // the next OOM hold; 0 = the first
    std::unique_ptr<TurnEnd> flush_;
    redis::ReplicaWait wait_;  // WAIT after each batch (options.wait_replicas)
    std::size_t confirmed_n_ = 0, confirmed_bytes_ = 0;  // this turn's, not yet handed on
    std::string scratch_;                                // reused for every command built
    std::uint64_t next_seq_ = 1;                         // the next task's ledger number
    std::vector<std::string> ledgers_;  // written to since the last tidy-up
    std::unique_ptr<Timer> tidy_;
};

}  // namespace streamfleet::detail::client
