#include "redis/replica_wait.hpp"

namespace streamfleet::detail::redis {

Status check_wait_replicas(int replicas, milliseconds timeout) {
    if (replicas < 0) {
        return Error(errc::invalid_argument,
                     "wait_replicas.replicas is " + std::to_string(replicas) + "; must be >= 0");
    }
    if (replicas > 0 && timeout.count() <= 0) {
        return Error(errc::invalid_argument,
                     "wait_replicas.timeout is " + std::to_string(timeout.count()) +
                         " ms; must be positive when wait_replicas.replicas > 0 (WAIT with "
                         "timeout 0 blocks forever)");
    }
    return Ok{};
}

ReplicaWait::ReplicaWait(Runtime& rt, Topology& topo, int replicas, milliseconds timeout)
    : topo_(topo),
      replicas_(replicas),
      timeout_(timeout),
      replicas_arg_(std::to_string(replicas)),
      timeout_arg_(std::to_string(timeout.count())) {
    if (enabled()) flush_ = std::make_unique<TurnEnd>(rt.loop(), [this] { send_waits(); });
}

ReplyCallback ReplicaWait::wrap(std::string route_key, ReplyCallback cb) {
    if (!enabled()) return cb;
    auto slot = std::make_shared<Slot>(Slot{std::nullopt, std::move(cb), std::move(route_key)});
    turn_[slot->route].push_back(slot);
    if (flush_) flush_->arm();
    return [slot](Result<Reply> r) { slot->own = std::move(r); };
}

void ReplicaWait::send_waits() {
    for (auto it = turn_.begin(); it != turn_.end();) {
        auto& route = it->first;
        if (waiting_[route]) {
            ++it;  // they go with the next WAIT, once this one answered
            continue;
        }
        waiting_[route] = true;
        CommandOptions opts;
        opts.block = timeout_;  // WAIT may hold its reply that long
        topo_.send(
            Route{route}, {"WAIT", replicas_arg_, timeout_arg_},
            [this, route, slots = std::move(it->second)](Result<Reply> w) mutable {
                waiting_[route] = false;
                answered(slots, std::move(w));
                if (flush_ && turn_.count(route)) flush_->arm();
            },
            opts);
        it = turn_.erase(it);
    }
}

void ReplicaWait::answered(std::vector<std::shared_ptr<Slot>>& slots, Result<Reply> w) {
    for (auto& slot : slots) {
        if (!slot->own) {
            // Its reply is not in yet: the write was sent again after the WAIT
            // (EVAL after NOSCRIPT). Wait once more, behind it.
            if (flush_) {
                turn_[slot->route].push_back(slot);
                flush_->arm();
            } else {
                slot->cb(Error(errc::closed, "closed before the replicas confirmed the write"));
            }
            continue;
        }
        Result<Reply> res = std::move(*slot->own);
        if (res.ok()) {
            if (!w.ok()) {
                res = w.error().with_context("WAIT after the write");
            } else if (w->as_integer().value_or(0) < replicas_) {
                res = Error(errc::timeout,
                            "WAIT: " + std::to_string(w->as_integer().value_or(0)) + " of " +
                                replicas_arg_ + " replica(s) acknowledged the write within " +
                                timeout_arg_ + " ms; not confirmed, it will be sent again");
            }
        }
        slot->cb(std::move(res));
    }
}

void ReplicaWait::close() {
    if (!flush_) return;
    flush_->close();
    flush_.reset();
    auto turn = std::move(turn_);
    turn_.clear();
    for (auto& [route, slots] : turn) {
        for (auto& slot : slots) {
            slot->cb(Error(errc::closed, "closed before the replicas confirmed the write"));
        }
    }
}

}  // namespace streamfleet::detail::redis
