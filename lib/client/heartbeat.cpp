// Heartbeat: keeps this client's entry in each queue's P{Q}:clients fresh, and removes it.
#include "client/heartbeat.hpp"

namespace streamfleet::detail::client {

Heartbeat::Heartbeat(ClientContext& ctx)
    : ctx_(ctx), timer_(std::make_unique<Timer>(ctx.rt.loop())) {}

void Heartbeat::start() { tick(); }

void Heartbeat::tick() {
    auto now = std::to_string(ctx_.clock.now_ms());
    for (const auto& [_, k] : ctx_.queues) {
        ctx_.topo.send(redis::Route{k.clients()}, {"ZADD", k.clients(), now, ctx_.id},
                       [](Result<redis::Reply>) {});
    }
    timer_->start(static_cast<std::uint64_t>(ctx_.options.heartbeat_interval.count()),
                  [this] { tick(); });
}

void Heartbeat::stop() {
    if (timer_) timer_->stop();
}

void Heartbeat::clear(redis::CommandOptions opts, std::function<void()> done) {
    auto remaining = std::make_shared<std::size_t>(ctx_.queues.size());
    auto shared_done = std::make_shared<std::function<void()>>(std::move(done));
    if (*remaining == 0) (*shared_done)();
    for (const auto& [_, k] : ctx_.queues) {
        ctx_.topo.send(
            redis::Route{k.clients()}, {"ZREM", k.clients(), ctx_.id},
            [remaining, shared_done](Result<redis::Reply>) {
                if (--*remaining == 0) (*shared_done)();
            },
            opts);
    }
}

void Heartbeat::close() { timer_.reset(); }

}  // namespace streamfleet::detail::client
