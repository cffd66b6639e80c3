#pragma once

// Test access: what tests may change in a Server that the public API does not offer.

#include "core/clock.hpp"
#include "streamfleet/server.hpp"

namespace streamfleet::detail {

struct ServerTestAccess {
    /// The clock the server's components read (before start(); it must outlive the server). A
    /// test gives one server a skewed clock to show that no liveness decision reads it.
    static void set_clock(Server& server, const Clock& clock);
    /// Stops the started server's heartbeat and nothing else: a live server whose beat looks dead.
    static void stop_heartbeat(Server& server);
};

}  // namespace streamfleet::detail
