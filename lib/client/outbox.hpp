// Outbox: sends accepted tasks in order until Redis confirms each, resending after outages.
#pragma once

// Tasks wait in the outbox, in acceptance order, until Redis confirms their
// command. While the link works they are sent at once (pipelined). The first
// failed command marks the link down: nothing new is sent, the failed tasks
// are marked unsent, and when the connection is back (its ready edge, or a
// retry every 500 ms) every unsent task is sent again in outbox order -- so a
// buffer filled during an outage drains in order. A lost connection may mean a
// command did run; the resend then duplicates those tasks, which at-least-once
// delivery allows. An accepted task is never dropped while the client is open.
//
// Confirmations are counted and handed on once per loop turn (a TurnEnd), so a
// burst of replies wakes the callers waiting for room once, not per task.
// Loop thread only.

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/context.hpp"
#include "client/outgoing.hpp"
#include "client/spool.hpp"
#include "core/error.hpp"
#include "redis/reply.hpp"

namespace streamfleet::detail::client {

class Outbox {
public:
    /// Gets the number and bytes (Outgoing::bytes) of the tasks Redis
    /// confirmed during one loop turn.
    using Confirmed = std::function<void(std::size_t tasks, std::size_t bytes)>;

    /// On the loop thread. `spool` (may be null) hears of every confirmed task.
    Outbox(ClientContext& ctx, Spool* spool, Confirmed confirmed);
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
    void resume();

    ClientContext& ctx_;
    Spool* spool_;
    Confirmed confirmed_;
    // Owns every task until Redis confirms it. Commands in flight point at
    // tasks in here: a deque keeps elements in place as its ends grow and
    // shrink, and a task leaves only once its reply is in.
    std::deque<Outgoing> tasks_;
    bool link_down_ = false;
    bool stopping_ = false;
    std::unique_ptr<Timer> resend_;
    std::unique_ptr<TurnEnd> flush_;
    std::size_t confirmed_n_ = 0, confirmed_bytes_ = 0;  // this turn's, not yet handed on
    std::string scratch_;                                // reused for every command built
};

}  // namespace streamfleet::detail::client
