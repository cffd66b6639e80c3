// Heartbeat: keeps this client's entry in each queue's P{Q}:clients fresh, and removes it.
#pragma once

// Servers take a client whose beat is older than orphan_timeout for dead and
// delete its notification stream; so the beat runs on a timer of its own,
// independent of enqueues. Loop thread only.
//
// Go-compatible mode beats in the Go library's form (the same ZADD, of unix ms,
// into PQ:receivers) and, as every Go client does, deletes the notification
// streams of clients silent for 10 minutes and their beats: a queue served only
// by Go workers has no server of ours whose janitor would.

#include <functional>
#include <memory>

#include "client/context.hpp"

namespace streamfleet::detail::client {

class Heartbeat {
public:
    /// On the loop thread; beats nothing until start().
    explicit Heartbeat(ClientContext& ctx);

    /// Beats now, then every heartbeat_interval.
    void start();
    /// One beat: ZADD P{Q}:clients now id for each queue; in Go-compatible mode
    /// also one sweep of the silent clients.
    void tick();
    /// No more beats.
    void stop();
    /// Removes this client from every P{Q}:clients; `done` runs once, when
    /// every reply is in.
    void clear(redis::CommandOptions opts, std::function<void()> done);
    /// Stops and closes the timer.
    void close();

private:
    void sweep_silent(const QueueKeys& k, std::int64_t now_ms);

    ClientContext& ctx_;
    std::unique_ptr<Timer> timer_;
};

}  // namespace streamfleet::detail::client
