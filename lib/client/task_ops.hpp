// TaskOps: the client's calls that wait for Redis: cancel, get, and claiming a uniqueness key.
#pragma once

// Each is one script call (lib/scripts) sent through the loop and waited for
// on the caller's thread, bounded by the command timeout. Called from the loop
// thread (an on_done callback) they fail with InvalidArgument rather than wait
// for the loop they block. Any thread but the loop's.

#include <chrono>
#include <string_view>

#include "client/context.hpp"
#include "core/wire.hpp"
#include "streamfleet/task.hpp"

namespace streamfleet::detail::client {

class TaskOps {
public:
    explicit TaskOps(ClientContext& ctx) : ctx_(ctx) {}

    /// Cancels task `id` wherever it is; tells its tracking client when no
    /// server will (the task was delayed or not yet delivered).
    /// @throws NotFound, UnknownQueue, IoError/TimeoutError.
    CancelResult cancel(std::string_view queue, std::string_view id);
    /// The task's state (lib/scripts/get.lua); TaskState::unknown when there is none.
    TaskInfo get(std::string_view queue, std::string_view id);

    /// Claims `m.unique` for task `m.id` for `ttl`.
    /// @throws Duplicate naming the task that holds it.
    /// `holder` names this enqueue in the claim: the task id, or for a chosen id (which a second
    /// enqueue shares) the id and a nonce, so that only a resend of this very claim is idempotent.
    void claim_unique(const QueueKeys& keys, const TaskMessage& m, std::string_view holder,
                      std::chrono::milliseconds ttl);
    /// Gives a claimed key back, when the task it was claimed for was refused.
    void release_unique(const QueueKeys& keys, const TaskMessage& m, std::string_view holder);

private:
    ClientContext& ctx_;
};

}  // namespace streamfleet::detail::client
