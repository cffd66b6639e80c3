// Outgoing: one accepted task on its way to Redis, already in its wire form.
#pragma once

// Made on the caller's thread by the encoder (formatting is most of the
// per-task work, and the loop thread, which also reads every reply, is the one
// that must not be the bottleneck), carried to the loop by Admission, owned by
// the Outbox until Redis confirms it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "client/handle_state.hpp"
#include "core/scripts.hpp"
#include "streamfleet/task.hpp"

namespace streamfleet::detail::client {

struct Outgoing {
    /// How the task travels.
    enum class Form {
        noted,    // no state record: `cmd` holds this task's entry fields, sent
                  // with the other noted tasks of its stream and turn and
                  // noted in the client's ledger (see command_for)
        batched,  // `cmd` holds this task's arguments to scripts::enqueue, sent
                  // in one call with the other batched tasks of its stream and turn
        script,   // a script call of its own (`script`): a delayed task
    };

    TaskId id;
    Form form = Form::noted;
    /// P{Q}. Points into a QueueKeys that outlives the task.
    const std::string* stream = nullptr;
    std::string cmd;
    /// The task's queue's keys when it has state tracking (Form::batched, and
    /// a delayed task with it): the enqueue script names them, and the
    /// listener asks for the task's state to learn whether Redis lost it.
    const QueueKeys* record_keys = nullptr;
    /// P{Q}:sent:CLIENT for a task without a state record (Form::noted, and a
    /// delayed task without one): the ledger that makes its resend harmless.
    std::string ledger;
    /// How many arguments `cmd` holds, for Form::batched and Form::noted.
    std::size_t batch_args = 0;
    /// The task's number in its client's ledger, given by the outbox in the
    /// order it takes tasks (so "every task below the oldest one waiting is
    /// settled" holds).
    std::uint64_t seq = 0;
    /// The task's place in the outbox: its first ledger number, kept when a
    /// refusal renumbers it. The oldest waiting task's is the ledger's floor.
    std::uint64_t order = 0;
    /// For Form::script. Behind a pointer: tasks are moved twice on their way
    /// to the outbox, and delayed ones are the rare kind.
    std::unique_ptr<ScriptCall> script;
    /// What the task holds of the local buffer (Admission::footprint).
    std::size_t bytes = 0;
    /// Set for a tracked task. The listener registers it on the loop thread
    /// before the task is sent, so even an instant notification finds it.
    std::shared_ptr<HandleState> handle;
    /// Set by Client::enqueue_confirmed and enqueue_async: called once, with
    /// nullptr when Redis has the task, else with Refused or ClosedError.
    using Stored = std::function<void(const std::string& id, std::exception_ptr why)>;
    Stored stored;

    // Outbox bookkeeping, loop thread only. `sent`: a command carrying the
    // task is in flight or confirmed. `done`: Redis confirmed or refused it.
    // `solo`: a batch holding it was refused, so it goes alone from now on
    // (which finds the task Redis refuses and lets the others through).
    // `oom_since`/`hold_until`: refused for lack of memory since then, not
    // resent before `hold_until`.
    // `in_doubt`: a command carrying it may have run without its reply coming
    // back (a lost reply, or a batch refused part-way through its script), so
    // its resend is checked: the scripts skip what an earlier send added.
    bool sent = false;
    bool in_doubt = false;
    bool done = false;
    bool solo = false;
    std::chrono::steady_clock::time_point oom_since{};
    std::chrono::steady_clock::time_point hold_until{};
};

// Calls o.stored (once: it is cleared first) with `why`, nullptr for stored. What the callback
// throws is logged, not let into the loop.
void tell_stored(Outgoing& o, std::exception_ptr why) noexcept;

}  // namespace streamfleet::detail::client
