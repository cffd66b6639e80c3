// Heartbeat: keeps this client's entry in each queue's P{Q}:clients fresh, and removes it.
#include "client/heartbeat.hpp"

#include "core/log.hpp"

namespace streamfleet::detail::client {

Heartbeat::Heartbeat(ClientContext& ctx)
    : ctx_(ctx), timer_(std::make_unique<Timer>(ctx.rt.loop())) {}

void Heartbeat::start() {
    // Once, best effort (a user allowed no SADD still enqueues): the queues are listed from
    // this set, which a cluster holds on one node, whatever slots the queues are in.
    if (!ctx_.options.go_compatible && !ctx_.queues.empty()) {
        auto key = queue_registry_key(ctx_.options.prefix);
        std::vector<std::string> argv{"SADD", key};
        for (const auto& [_, k] : ctx_.queues) argv.push_back(k.queue());
        std::vector<std::string_view> view(argv.begin(), argv.end());
        ctx_.topo.send(redis::Route{key}, view, [](Result<redis::Reply>) {});
    }
    tick();
}

void Heartbeat::tick() {
    auto now_ms = ctx_.clock.now_ms();
    auto now = std::to_string(now_ms);
    for (const auto& [_, k] : ctx_.queues) {
        ctx_.topo.send(redis::Route{k.clients()}, {"ZADD", k.clients(), now, ctx_.id},
                       [](Result<redis::Reply>) {});
        if (ctx_.options.go_compatible) sweep_silent(k, now_ms);
    }
    timer_->start(static_cast<std::uint64_t>(ctx_.options.heartbeat_interval.count()),
                  [this] { tick(); });
}

// Each silent client loses its notification stream (its group goes with it), then its beat; a
// failed step is simply tried again at the next beat.
void Heartbeat::sweep_silent(const QueueKeys& k, std::int64_t now_ms) {
    auto cutoff = "(" + std::to_string(now_ms - kGoClientSilentMs);
    ctx_.topo.send(
        redis::Route{k.clients()}, {"ZRANGEBYSCORE", k.clients(), "-inf", cutoff},
        [this, clients = k.clients()](Result<redis::Reply> res) {
            if (!res.ok() || !res->is_array()) return;
            for (const auto& c : res->elements()) {
                auto id = c.as_string();
                if (!id || *id == ctx_.id) continue;
                auto key = receiver_key(ctx_.options.prefix, *id, KeyStyle::go);
                log().info("client {}: removing the notification stream of silent client {}",
                           ctx_.id, *id);
                ctx_.topo.send(redis::Route{key}, {"DEL", key}, [](Result<redis::Reply>) {});
                ctx_.topo.send(redis::Route{clients}, {"ZREM", clients, *id},
                               [](Result<redis::Reply>) {});
            }
        });
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
