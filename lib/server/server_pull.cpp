// Server's pull mode: pop() and settle() for queues registered with pull() (server/puller.hpp).
#include <future>

#include "server/server_impl.hpp"

namespace streamfleet {
inline namespace v1 {

QueueContext& Server::Impl::pulled_queue(std::string_view queue, bool settling) {
    auto& im = *this;
    {
        std::lock_guard lock(im.state_mutex);
        if (!im.started)
            throw InvalidArgument("server not started: pop() and settle() need start()");
        // Popped tasks may still be settled during shutdown's grace; nothing more is popped.
        if (!im.running && (!settling || im.shut_down || !im.built))
            throw ClosedError(settling ? "server has shut down: nothing more is settled"
                                       : "server is shutting down: nothing more is popped");
    }
    // Built by start() and never changed while running.
    for (auto& q : im.queues) {
        if (q.keys.queue() != queue) continue;
        if (!q.pulled) {
            throw InvalidArgument("queue '" + std::string(queue) +
                                  "' has a handler; pop() and settle() are for pulled queues");
        }
        return q;
    }
    throw InvalidArgument("queue '" + std::string(queue) + "' is not pulled by this server");
}

void Server::pop_async(std::string_view queue, std::chrono::milliseconds wait,
                       std::chrono::milliseconds lease, PopCallback done) {
    auto& im = *impl_;
    if (!done) throw InvalidArgument("pop_async() needs a callback");
    if (lease.count() <= 0) throw InvalidArgument("lease must be positive");
    auto& q = im.pulled_queue(queue, false);
    auto shared = std::make_shared<PopCallback>(std::move(done));
    bool posted = im.rt->post([&im, &q, wait, lease, shared] {
        im.parts->puller.pop(q, wait.count(), lease.count(), std::move(*shared));
    });
    if (!posted) (*shared)(std::nullopt);  // stopping: nothing more is handed out
}

std::optional<PoppedTask> Server::pop(std::string_view queue, std::chrono::milliseconds wait,
                                      std::chrono::milliseconds lease) {
    auto got = std::make_shared<std::promise<std::optional<PoppedTask>>>();
    auto fut = got->get_future();
    pop_async(queue, wait, lease,
              [got](std::optional<PoppedTask> t) { got->set_value(std::move(t)); });
    return fut.get();
}

void Server::settle_async(std::string_view queue, std::string_view id, Outcome outcome,
                          std::function<void(bool)> done) {
    auto& im = *impl_;
    auto& q = im.pulled_queue(queue, true);
    // Claimed here, so the answer needs no trip through the loop: the settle is taken, and
    // the loop carries it out in its turn.
    if (!im.parts->puller.claim(q, id)) {
        if (done) done(false);
        return;
    }
    bool posted = im.rt->post([&im, &q, id = std::string(id), outcome = std::move(outcome)]() mutable {
        im.parts->puller.settle(q, id, std::move(outcome));
    });
    // Stopping: the task goes back to its stream (or is taken over) without this outcome.
    if (done) done(posted);
}

bool Server::settle(std::string_view queue, std::string_view id, Outcome outcome) {
    auto got = std::make_shared<std::promise<bool>>();
    auto fut = got->get_future();
    settle_async(queue, id, std::move(outcome), [got](bool held) { got->set_value(held); });
    return fut.get();
}

}  // namespace v1
}  // namespace streamfleet
