#pragma once

// Durable writes: responsible for getting each outcome write into Redis, resent while away.
//
// A write is sent at once, kept and resent every 250 ms while the failure is a link problem
// (Error::is_transient: Redis restarting, a lost connection, a failover), and given up and logged
// when Redis refuses it (WRONGTYPE, OOM, a script error): a refusal resent is refused again and
// would block the writes behind it.

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/scripts.hpp"
#include "redis/reply.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

class DurableWrites {
public:
    /// `changed` runs whenever outstanding() drops.
    DurableWrites(ServerContext& ctx, std::function<void()> changed);

    /// A plain command, routed by argv[1] (its key). `what` names it in logs.
    void write(std::vector<std::string> argv, std::string what);
    /// A script call; `then` runs once Redis has run it (never when it was refused).
    void write(ScriptCall call, std::string what, Done then = {});
    /// A script call whose reply matters: `then` gets it once Redis has run it.
    void write(ScriptCall call, std::string what, std::function<void(const redis::Reply&)> then);
    /// Resends every kept write now.
    void resend();
    /// Closes the resend timer; kept writes are given up. Loop thread; idempotent.
    void stop();

    /// Writes sent or kept, not answered yet.
    std::size_t outstanding() const noexcept { return outstanding_; }

private:
    struct Write {
        std::string route;
        std::vector<std::string> argv;
        std::string what;
        std::optional<ScriptCall> script{};
        Done then{};
        std::function<void(const redis::Reply&)> then_reply{};
    };

    void send(std::shared_ptr<Write> w);

    ServerContext& ctx_;
    std::function<void()> changed_;
    bool stopped_ = false;
    std::size_t outstanding_ = 0;
    std::deque<std::shared_ptr<Write>> kept_;  // failed for link reasons, resent by the timer
    Timer resend_timer_;
};

}  // namespace streamfleet::detail
