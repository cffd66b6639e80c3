// Promoter: lib/scripts/promote.lua per queue, then a timer until the earliest due task.

#include "server/promoter.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "core/wire.hpp"
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
        if (res.ok() && res->is_array() && res->size() == 4) {
            moved = (*res)[0].as_integer().value_or(0);
            next = (*res)[1].as_integer().value_or(-1);
            if (auto dead = (*res)[2].as_integer().value_or(0); dead > 0) {
                ctx_.counters.malformed += static_cast<std::uint64_t>(dead);
                log().warn("server {}: {} malformed member(s) of {} dead-lettered", ctx_.consumer,
                           dead, pq.queue->keys.delayed());
            }
            notify_canceled(*pq.queue, (*res)[3]);
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

// Tasks canceled while they ran, whose cancel promote.lua honoured instead of running them again:
// their tracking clients hear of it here (their streams live in other slots than the script's).
void Promoter::notify_canceled(const QueueContext& q, const redis::Reply& list) {
    for (std::size_t i = 0; i + 1 < list.size(); i += 2) {
        ++ctx_.counters.canceled;
        count(ctx_.counters, q.index, &QueueMetrics::canceled);
        auto client = list[i + 1].str();
        if (client.empty()) continue;
        Notification n{
            std::string(list[i].str()), NotificationType::canceled, {}, {}, ctx_.consumer};
        auto f = encode(n);
        auto key = receiver_key(ctx_.opts.prefix, client);
        std::vector<std::string_view> argv{"XADD", key, "*"};
        argv.insert(argv.end(), f.views().begin(), f.views().end());
        ctx_.topo.send(redis::Route{key}, argv, [this, key](Result<redis::Reply> r) {
            if (!r.ok()) {
                log().warn("server {}: canceled notification to {} failed: {}", ctx_.consumer, key,
                           r.error().message());
            }
        });
    }
}

}  // namespace streamfleet::detail
