// Heartbeat: ZADD (and, on shutdown, ZREM) of this server in every queue's P{Q}:servers.

#include "server/heartbeat.hpp"

#include <string>

namespace streamfleet::detail {

namespace r = redis;

Heartbeat::Heartbeat(ServerContext& ctx, Queues queues)
    : ctx_(ctx), queues_(queues), timer_(ctx.rt.loop()) {}

void Heartbeat::start() {
    if (stopped_) return;
    tick();
    timer_.start(delay_ms(ctx_.opts.heartbeat_interval.count()), [this] { start(); });
}

void Heartbeat::stop() {
    stopped_ = true;
    timer_.close();
}

void Heartbeat::tick(Done done) {
    auto join = Join::make(std::move(done));
    auto now = std::to_string(ctx_.clock.now_ms());
    for (auto& q : queues_) {
        join->add();
        ctx_.topo.send(r::Route{q.keys.servers()}, {"ZADD", q.keys.servers(), now, ctx_.consumer},
                       [join](Result<r::Reply>) { join->arrive(); });
    }
    join->arrive();
}

void Heartbeat::remove(Done done) {
    auto join = Join::make(std::move(done));
    for (auto& q : queues_) {
        join->add();
        ctx_.topo.send(r::Route{q.keys.servers()}, {"ZREM", q.keys.servers(), ctx_.consumer},
                       [join](Result<r::Reply>) { join->arrive(); });
    }
    join->arrive();
}

}  // namespace streamfleet::detail
