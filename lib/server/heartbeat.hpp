#pragma once

// Heartbeat: responsible for this server's entry in every queue's P{Q}:servers and its hold on
// its id.
//
// Each beat (lib/scripts/beat.lua) stamps the entry with Redis's clock, never the host's, so one
// clock decides who is dead (dead.lua, claim.lua, forget.lua compare with Redis's TIME too). The
// same step renews a token under P{Q}:servers:ID that only this server's life holds: a second
// server started with the same id finds it held and refuses to start, a crashed one's lapses
// with its beat. Leaving (shutdown) removes the entry only when nothing is left pending; entries
// it could not ack leave it "departed" (score 0) for peers to take at once.

#include <cstdint>
#include <functional>
#include <string>

#include "server/context.hpp"

namespace streamfleet::detail {

class Heartbeat {
public:
    struct Beat {
        /// Another server holds this id in some queue (nothing was written there).
        bool held = false;
        /// How long, at most, the other holder's token still lives (ms).
        std::int64_t held_for_ms = 0;
        /// Some queue's beat got no answer (Redis unreachable, refused).
        bool failed = false;
    };
    using Beaten = std::function<void(const Beat&)>;

    Heartbeat(ServerContext& ctx, Queues queues);

    /// Beats now and every heartbeat_interval.
    void start();
    void stop();
    /// One beat in every queue; `done` once every reply is in.
    void tick(Beaten done = {});
    /// Leaves every queue's registry (lib/scripts/leave.lua); `done` once every reply is in.
    void remove(Done done);

private:
    ServerContext& ctx_;
    Queues queues_;
    std::string token_;
    bool stopped_ = false;
    bool beating_ = false;    // start() was called
    bool held_said_ = false;  // the "id held by another server" error was logged
    Timer timer_;
};

}  // namespace streamfleet::detail
