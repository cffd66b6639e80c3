// Heartbeat: lib/scripts/beat.lua in every queue, leave.lua on shutdown (see heartbeat.hpp).

#include "server/heartbeat.hpp"

#include <algorithm>
#include <memory>

#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "core/uuid.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

// A token per server life: random, so two lives with one id never share it.
std::string new_token() {
    static UuidV7Generator ids;
    return ids.next();
}

}  // namespace

Heartbeat::Heartbeat(ServerContext& ctx, Queues queues)
    : ctx_(ctx), queues_(queues), token_(new_token()), timer_(ctx.rt.loop()) {}

void Heartbeat::start() {
    if (stopped_) return;
    if (!beating_ && !ctx_.opts.go_compatible && !queues_.empty()) {
        // Once, best effort, as clients do (client/heartbeat.cpp): the queues' registry.
        auto key = queue_registry_key(ctx_.opts.prefix);
        std::vector<std::string> argv{"SADD", key};
        for (const auto& q : queues_) argv.push_back(q.keys.queue());
        std::vector<std::string_view> view(argv.begin(), argv.end());
        ctx_.topo.send(r::Route{key}, view, [](Result<r::Reply>) {});
    }
    beating_ = true;
    tick();
    timer_.start(delay_ms(ctx_.opts.heartbeat_interval.count()), [this] { start(); });
}

void Heartbeat::stop() {
    stopped_ = true;
    timer_.close();
}

void Heartbeat::tick(Beaten done) {
    auto result = std::make_shared<Beat>();
    auto join = Join::make([this, result, done = std::move(done)] {
        // Before start(), Server::start() is waiting for the id and says so itself.
        if (!beating_) {
            if (done) done(*result);
            return;
        }
        if (result->held && !held_said_) {
            log().error(
                "server {}: another server is running with this id (its hold on the id lives "
                "{} ms more); two servers with one id would run the same tasks",
                ctx_.consumer, result->held_for_ms);
        }
        held_said_ = result->held;
        if (done) done(*result);
    });
    for (auto& q : queues_) {
        join->add();
        r::run_script(ctx_.topo, calls::beat(q.keys, ctx_.consumer, token_,
                                             ctx_.opts.dead_after.count()),
                      [result, join](Result<r::Reply> res) {
                          if (!res.ok() || !res->is_array() || res->size() < 2) {
                              result->failed = true;
                          } else if ((*res)[0].as_integer().value_or(0) == 0) {
                              result->held = true;
                              result->held_for_ms = std::max<std::int64_t>(
                                  result->held_for_ms, (*res)[1].as_integer().value_or(0));
                          }
                          join->arrive();
                      });
    }
    join->arrive();
}

void Heartbeat::remove(Done done) {
    auto join = Join::make(std::move(done));
    for (auto& q : queues_) {
        join->add();
        r::run_script(ctx_.topo, calls::leave(q.keys, ctx_.consumer, token_),
                      [this, &q, join](Result<r::Reply> res) {
                          if (res.ok() && res->as_integer().value_or(1) == 0) {
                              log().warn(
                                  "server {}: left {} with entries it could not ack; peers take "
                                  "them over now",
                                  ctx_.consumer, q.keys.stream());
                          }
                          join->arrive();
                      });
    }
    join->arrive();
}

}  // namespace streamfleet::detail
