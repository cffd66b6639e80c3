// Promoter: lib/scripts/promote.lua per queue, then a timer until the earliest due task.

#include "server/promoter.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

namespace {

// Members moved per script call: bounds how long one call holds Redis.
constexpr std::int64_t kBatch = 256;
// Re-check at least this often even when nothing is known to be due: other servers and clients
// may schedule tasks this server has not heard of.
constexpr std::int64_t kRecheckMs = 1000;

}  // namespace

Promoter::Promoter(ServerContext& ctx, Queues queues) : ctx_(ctx) {
    for (auto& q : queues) {
        queues_.push_back(PerQueue{&q, std::make_unique<Timer>(ctx.rt.loop())});
    }
}

void Promoter::start() {
    for (auto& pq : queues_) promote(pq, {});
}

void Promoter::stop() {
    stopped_ = true;
    for (auto& pq : queues_) pq.timer->close();
}

void Promoter::tick(Done done) {
    auto join = Join::make(std::move(done));
    for (auto& pq : queues_) {
        join->add();
        promote(pq, [join] { join->arrive(); });
    }
    join->arrive();
}

// While a promote script runs, its reply re-arms the timer for the head it saw, which may be later
// than `due`; so `due` is remembered for then.
void Promoter::want(QueueContext& q, std::int64_t due) {
    auto& pq = queues_[q.index];
    if (pq.promoting) {
        pq.wanted = pq.wanted < 0 ? due : std::min(pq.wanted, due);
        return;
    }
    if (pq.armed_for < 0 || due < pq.armed_for) arm(pq, due);
}

void Promoter::arm(PerQueue& pq, std::int64_t due) {
    if (stopped_) return;
    auto now = ctx_.clock.now_ms();
    auto wait = std::clamp<std::int64_t>(due - now, 0, kRecheckMs);
    pq.armed_for = now + wait;
    pq.timer->start(delay_ms(wait), [this, &pq] { promote(pq, {}); });
}

void Promoter::promote(PerQueue& pq, Done done) {
    pq.armed_for = -1;
    if (stopped_) return;
    pq.promoting = true;
    auto call = calls::promote(pq.queue->keys, ctx_.clock.now_ms(), kBatch);
    redis::run_script(ctx_.topo, std::move(call), [this, &pq, done](Result<redis::Reply> res) {
        if (stopped_) return;
        std::int64_t next = -1;
        long long moved = 0;
        if (res.ok() && res->is_array() && res->size() == 2) {
            moved = (*res)[0].as_integer().value_or(0);
            next = (*res)[1].as_integer().value_or(-1);
        } else if (!res.ok()) {
            log().warn("server {}: promoting delayed tasks failed: {}", ctx_.consumer,
                       res.error().message());
        }
        if (moved == kBatch) {
            promote(pq, done);  // more are due right now
            return;
        }
        pq.promoting = false;
        if (next < 0) next = ctx_.clock.now_ms() + kRecheckMs;
        if (pq.wanted >= 0) next = std::min(next, pq.wanted);
        pq.wanted = -1;
        arm(pq, next);
        if (done) done();
    });
}

}  // namespace streamfleet::detail
