// Server: responsible for wiring the components together and for the public Server methods.
//
// The Server methods check options, start, shut down and report stats. The work itself is done by
// the components, one file pair each:
//   reader            XREADGROUP BLOCK into free slots, one connection per shard group
//   puller            pulled queues: read for waiting pop()s, popped tasks held until settle()
//   dispatcher        decode, expiry and poison checks, run timer, hand-off to the handler pool
//   outcome_writer    outcome durable first, then acks batched per loop turn
//   durable_writes    each outcome write into Redis: kept and resent with backoff while Redis
//                     is away or out of memory
//   lease_keeper      renews the leases of running entries, and of entries whose outcome is
//                     still being written, every lease/3
//   reclaimer         takes over entries of dead servers, idle entries, own leftovers
//   heartbeat         ZADD P{Q}:servers
//   promoter          due delayed tasks → the stream
//   control_listener  nudges (for the promoter) and cancels (for the dispatcher)
//   janitor           orphaned client streams, dead-letter retention
// They share a ServerContext (context.hpp) and the handler Slots (job.hpp); everything else they
// learn of each other comes through the callbacks wired in Parts below.
//
// Start order (loop thread, unless said):
//   0. off the loop, waiting: the ACL check (acl_check.hpp) -- a command the Redis user may not
//      run fails start() with its name;
//   1. the topology, then the stop hook, before any other handle exists, so that whatever
//      follows is closed on the loop when the runtime stops, even after a failed start;
//   2. the components (their timers exist from here on);
//   3. this server holds its id (beat.lua, waiting up to dead_after + a beat for a crashed previous
//      life's hold to lapse; a running server with the same id makes start() throw ServerIdInUse)
//      -- off the loop, before any component runs;
//   4. consumer groups created → own leftovers of a previous life claimed → the reader plans its
//      shard groups (once the topology is ready) and reads: a read racing the recovery claim
//      would make fresh deliveries look stale;
//   5. meanwhile: heartbeat (beats now), reclaimer (looks for dead servers now), lease keeper,
//      janitor, promoter (promotes now), control listener (listens once the topology is ready);
//   6. off the loop: the handler threads.
//
// Stop order (shutdown(grace)):
//   1. the heartbeat, promoter, reclaimer and janitor stop; the dispatcher starts no more
//      handlers and returns unstarted tasks to their stream (move: XADD the same fields, then
//      XACK, XDEL; no retry spent); the reader stops reading and wakes its blocked reads with
//      CLIENT UNBLOCK rather than closing their sockets, so an answer already on the wire is not
//      lost: its entries go back to the stream too;
//   2. running handlers get `grace` to finish, while the lease keeper still renews their leases
//      and the control listener still hears cancels;
//   3. then their cancel tokens fire (a run cut short goes back to the stream), and we wait for
//      them to return, however long that takes;
//   4. the lease keeper stops; outcome writes are waited for (bounded by the command timeout);
//   5. the server leaves every queue's registry (leave.lua, bounded likewise): its entry goes when
//      nothing of it is left pending, otherwise it stays as "departed" (score 0) so that peers
//      take the leftovers at once rather than after their lease; its hold on its id is released;
//   6. the runtime stops: the stop hook closes every component's timers and connections and the
//      topology, and the loop ends;
//   7. the handler threads are joined.

#include "streamfleet/server.hpp"

#include <algorithm>
#include <future>
#include <thread>

#include "core/log.hpp"
#include "server/acl_check.hpp"
#include "server/server_impl.hpp"
#include "server/test_access.hpp"

namespace streamfleet {
inline namespace v1 {

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
    auto& o = impl_->opts;
    o = std::move(options);
    if (o.id.empty()) throw InvalidArgument("server id is empty");
    if (o.id.find_first_of(" \t\r\n{}") != std::string::npos) {
        throw InvalidArgument("server id '" + o.id + "' contains a space or brace");
    }
    if (o.concurrency == 0) throw InvalidArgument("concurrency is 0");
    if (o.read_block.count() <= 0) throw InvalidArgument("read_block is not positive");
    if (o.heartbeat_interval.count() <= 0) {
        throw InvalidArgument("heartbeat_interval is not positive");
    }
    if (o.lease.count() < 3) throw InvalidArgument("lease must be at least 3 ms");
    if (o.dead_after <= o.heartbeat_interval) {
        throw InvalidArgument("dead_after (" + std::to_string(o.dead_after.count()) +
                              " ms) must be longer than heartbeat_interval (" +
                              std::to_string(o.heartbeat_interval.count()) + " ms)");
    }
    if (o.max_deliveries == 0) throw InvalidArgument("max_deliveries is 0");
    if (auto st = r::check_wait_replicas(o.wait_replicas.replicas, o.wait_replicas.timeout); !st) {
        throw_error(st.error());
    }
    if (o.orphan_timeout.count() <= 0) throw InvalidArgument("orphan_timeout is not positive");
    if (o.go_compatible && o.lease.count() > kGoReclaimIdleMs) {
        // Go servers take over a task idle for a minute; our renewals must come sooner.
        throw InvalidArgument("lease (" + std::to_string(o.lease.count()) +
                              " ms) must be at most 60000 ms with go_compatible");
    }
    if (auto st = validate_prefix(o.prefix); !st) throw_error(st.error());
    (void)r::parse_url(o.redis).value();  // a bad URL fails here, not later
}

Server::~Server() {
    try {
        shutdown(10s);
    } catch (const std::exception& e) {
        log().error("server shutdown failed: {}", e.what());
    }
}

void Server::handle(std::string_view queue, OutcomeHandler handler) {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (im.started) throw InvalidArgument("handle() after start(): register handlers first");
    }
    if (auto st = validate_queue_name(queue, key_style(im.opts.go_compatible)); !st) {
        throw_error(st.error());
    }
    if (!handler) throw InvalidArgument("handler for queue '" + std::string(queue) + "' is empty");
    if (auto it = im.handlers.find(queue); it != im.handlers.end()) {
        throw InvalidArgument("queue '" + std::string(queue) + "' already " +
                              (it->second ? "has a handler" : "is pulled"));
    }
    im.handlers.emplace(std::string(queue), std::move(handler));
}

void Server::pull(std::string_view queue) {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (im.started) throw InvalidArgument("pull() after start(): register queues first");
    }
    if (auto st = validate_queue_name(queue, key_style(im.opts.go_compatible)); !st) {
        throw_error(st.error());
    }
    if (auto it = im.handlers.find(queue); it != im.handlers.end()) {
        throw InvalidArgument("queue '" + std::string(queue) + "' already " +
                              (it->second ? "has a handler" : "is pulled"));
    }
    im.handlers.emplace(std::string(queue), OutcomeHandler{});
}

void Server::start() {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (im.started) return;
        if (im.handlers.empty()) {
            throw InvalidArgument("no handler registered: call handle() or pull() first");
        }
        im.started = true;
    }
    im.queues.reserve(im.handlers.size());
    for (auto& [name, handler] : im.handlers) {
        im.queues.push_back(
            QueueContext{QueueKeys(im.opts.prefix, name, key_style(im.opts.go_compatible)), handler,
                         im.queues.size(), !handler});
    }
    im.counters.queues.clear();
    for (std::size_t i = 0; i < im.queues.size(); ++i)
        im.counters.queues.push_back(std::make_unique<QueueMetrics>());
    im.rt = std::make_unique<Runtime>("sf-server");
    try {
        // Before any component runs: a command the user may not run fails here, named.
        if (auto st = check_permissions(*im.rt, im.opts, im.queues); !st) throw_error(st.error());
        im.rt->call([&im] { im.start_on_loop(); });
        im.hold_id();
        im.rt->call([&im] { im.run_on_loop(); });
    } catch (...) {
        // Nothing was started that needs a shutdown; leave a clean, unstarted server.
        im.rt->stop();
        im.rt.reset();
        im.parts.reset();
        im.ctx.reset();
        im.topo.reset();
        im.queues.clear();
        std::lock_guard lock(im.state_mutex);
        im.started = false;
        throw;
    }
    // Pulled queues run no handler here: a server that only pulls starts no thread.
    bool handles = std::any_of(im.queues.begin(), im.queues.end(),
                               [](const QueueContext& q) { return !q.pulled; });
    im.parts->dispatcher.start(handles ? im.opts.concurrency : 0);
    std::lock_guard lock(im.state_mutex);
    im.running = true;
    im.built = true;
}

void Server::run() {
    start();
    auto& im = *impl_;
    std::unique_lock lock(im.state_mutex);
    im.state_cv.wait(lock, [&] { return im.shut_down; });
}

void Server::shutdown(std::chrono::milliseconds grace) {
    auto& im = *impl_;
    {
        std::unique_lock lock(im.state_mutex);
        if (!im.started || im.shut_down) return;
        if (im.parts && im.parts->dispatcher.on_handler_thread()) {
            throw InvalidArgument(
                "shutdown() called from one of this server's handlers would wait for itself; "
                "call it from another thread");
        }
        if (im.shutting_down) {
            // Another thread is shutting down; wait for it.
            im.state_cv.wait(lock, [&] { return im.shut_down; });
            return;
        }
        im.shutting_down = true;
        im.running = false;
    }
    auto& p = *im.parts;
    im.rt->call([&im] { im.begin_stop(); });
    auto until = std::chrono::steady_clock::now() + grace;
    // The outstanding read counts too: its entries go back to the stream.
    if (!im.wait_state([&] { return im.in_flight == 0 && !im.read_pending; }, until)) {
        log().warn("server {}: grace period over; canceling running handlers", im.opts.id);
        im.rt->call([&p] {
            p.dispatcher.interrupt();
            p.puller.interrupt();
        });
        // Handlers must honour their cancel token; wait for them, saying so.
        while (!im.wait_state([&] { return im.in_flight == 0; },
                              std::chrono::steady_clock::now() + 5s)) {
            log().warn("server {}: still waiting for canceled handlers to return", im.opts.id);
        }
    }
    im.rt->call([&p] { p.lease_keeper.stop(); });
    auto bound = im.opts.command_timeout + 1s;
    im.wait_state([&] { return im.writes_pending == 0; }, std::chrono::steady_clock::now() + bound);
    auto removed = std::make_shared<std::promise<void>>();
    auto fut = removed->get_future();
    im.rt->post([&p, removed] { p.heartbeat.remove([removed] { removed->set_value(); }); });
    fut.wait_for(bound);
    im.rt->stop();
    p.dispatcher.join();
    {
        std::lock_guard lock(im.state_mutex);
        im.shut_down = true;
    }
    im.state_cv.notify_all();
}

}  // namespace v1

void detail::ServerTestAccess::set_clock(Server& server, const Clock& clock) {
    server.impl_->clock = &clock;
}

void detail::ServerTestAccess::stop_heartbeat(Server& server) {
    auto& im = *server.impl_;
    im.rt->call([&im] { im.parts->heartbeat.stop(); });
}

inline namespace v1 {

Server::Stats Server::stats() const {
    const auto& c = impl_->counters;
    return Stats{c.succeeded.load(), c.failed.load(),    c.retried.load(),  c.dead.load(),
                 c.expired.load(),   c.malformed.load(), c.returned.load(), c.canceled.load()};
}

}  // namespace v1
}  // namespace streamfleet
