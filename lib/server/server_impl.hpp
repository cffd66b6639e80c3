#pragma once

// The parts of a started Server and its state, shared by server.cpp (options, start, shutdown)
// and server_pull.cpp (pull mode). Internal: only those two include it.

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/log.hpp"
#include "core/random.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"
#include "server/context.hpp"
#include "server/control_listener.hpp"
#include "server/dispatcher.hpp"
#include "server/heartbeat.hpp"
#include "server/janitor.hpp"
#include "server/lease_keeper.hpp"
#include "server/outcome_writer.hpp"
#include "server/promoter.hpp"
#include "server/puller.hpp"
#include "server/reader.hpp"
#include "server/reclaimer.hpp"
#include "streamfleet/server.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
using namespace std::chrono_literals;
namespace r = detail::redis;

// The components of one started server and the callbacks between them. Built on the loop thread;
// the lambdas capture `this`, whose members all exist before any of them can run.
struct Parts {
    Parts(ServerContext& ctx, Queues queues, std::function<void()> changed)
        : slots(ctx.opts.concurrency),
          // Go clients make their notification stream on first read and sweep abandoned ones
          // by heartbeat: in Go-compatible mode a notification is written even into a stream
          // that does not exist yet.
          writer(ctx, queues,
                 {.changed = changed,
                  .delayed = [this](QueueContext& q, std::int64_t due) { promoter.want(q, due); }},
                 ctx.opts.go_compatible ? OutcomeWriter::Notify::always
                                        : OutcomeWriter::Notify::if_listening),
          dispatcher(
              ctx, slots, writer,
              {.changed = changed,
               .slots_freed =
                   [this] {
                       reader.tick();
                       puller.kick();
                   },
               .pulled = [this](std::shared_ptr<Job> job) { puller.deliver(std::move(job)); },
               .pulled_canceled =
                   [this](const std::shared_ptr<Job>& job) { puller.canceled(job); }}),
          reader(ctx, queues, slots, dispatcher, {.changed = changed}),
          puller(ctx, queues, slots, dispatcher,
                 {.settle = [this](const std::shared_ptr<Job>& job,
                                   Outcome out) { dispatcher.settle(job, std::move(out)); },
                  .recreate_groups = [this](Done then) { reader.create_groups(std::move(then)); }}),
          reclaimer(ctx, queues, slots, dispatcher,
                    // An entry whose outcome is being written is this server's still: never claimed
                    // back and run again.
                    {.is_running =
                         [this](const QueueContext& q, std::string_view id) {
                             return dispatcher.is_running(q, id) || writer.holds(q, id);
                         },
                     .need_slots = [this] { reader.unblock(); },
                     .claimed = [this] { reader.tick(); },
                     .changed = changed}),
          lease_keeper(ctx, queues,
                       [this](const QueueContext& q) {
                           auto ids = dispatcher.running_entries(q);
                           auto waiting = writer.held(q);
                           ids.insert(ids.end(), waiting.begin(), waiting.end());
                           return ids;
                       }),
          heartbeat(ctx, queues),
          promoter(ctx, queues),
          control(ctx, queues,
                  {.nudge = [this](QueueContext& q, std::int64_t due) { promoter.want(q, due); },
                   .cancel = [this](QueueContext& q,
                                    std::string_view id) { dispatcher.cancel(q, id); }}),
          janitor(ctx, queues) {}

    // Releases every handle and connection; loop thread, from the runtime's stop hook.
    void close() {
        heartbeat.stop();
        promoter.stop();
        lease_keeper.stop();
        reclaimer.stop();
        janitor.stop();
        control.stop();
        reader.close();
        puller.close();
        dispatcher.close();
        writer.stop();
    }

    Slots slots;
    OutcomeWriter writer;
    Dispatcher dispatcher;
    Reader reader;
    Puller puller;
    Reclaimer reclaimer;
    LeaseKeeper lease_keeper;
    Heartbeat heartbeat;
    Promoter promoter;
    ControlListener control;
    Janitor janitor;
};

struct Server::Impl {
    ServerOptions opts;
    // By queue name; an empty handler: a pulled queue.
    std::map<std::string, OutcomeHandler, std::less<>> handlers;
    // Built by start() in name order and never resized afterwards: components hold pointers.
    std::vector<QueueContext> queues;
    const Clock* clock = &SystemClock::instance();
    SeededRandom random;
    ServerCounters counters;

    // Loop thread. Declared in dependency order: parts use ctx, which uses topo.
    std::unique_ptr<r::Topology> topo;
    std::unique_ptr<ServerContext> ctx;
    std::unique_ptr<Parts> parts;

    // Progress seen by shutdown()/run() on other threads.
    std::mutex state_mutex;
    std::condition_variable state_cv;
    std::size_t in_flight = 0;       // running handlers
    std::size_t writes_pending = 0;  // outcome writes not answered yet
    bool read_pending = false;       // a read is outstanding
    bool started = false, shut_down = false, shutting_down = false;
    bool running = false;  // started and not shutting down: pop() and settle() may post
    bool built = false;    // start() succeeded: queues and their metrics stay as they are

    // Declared last: destroyed first, joining the loop before the state above goes.
    std::unique_ptr<Runtime> rt;

    /// The pulled queue named `queue` of a running server (for `settling`, one shutting down
    /// too), or a throw naming the problem (server_pull.cpp). Any thread.
    QueueContext& pulled_queue(std::string_view queue, bool settling);

    void publish() {
        std::lock_guard lock(state_mutex);
        in_flight = parts->dispatcher.in_flight();
        writes_pending = parts->writer.pending();
        read_pending = parts->reader.reading();
        state_cv.notify_all();
    }

    void start_on_loop() {
        r::ConnectionOptions co{.command_timeout = opts.command_timeout,
                                .client_name = "streamfleet-server:" + opts.id};
        topo = r::make_topology(*rt, r::parse_url(opts.redis).value(), co).value();
        rt->add_stop_hook([this] {
            if (parts) parts->close();
            if (topo) topo->close();
        });
        topo->start();
        ctx = std::make_unique<ServerContext>(
            ServerContext{opts, *rt, *topo, *clock, random, counters, opts.id});
        parts = std::make_unique<Parts>(*ctx, queues, [this] { publish(); });
    }

    // Off the loop, between start_on_loop() and run_on_loop(): beats until this server holds its
    // id in every queue. A crashed previous life's hold lapses within dead_after of its last beat;
    // a running server's never does. Redis not answering is no reason to refuse: the beats go on
    // once it answers (and say so if the id turns out held).
    void hold_id() {
        using clock_t = std::chrono::steady_clock;
        auto deadline = clock_t::now() + opts.dead_after + opts.heartbeat_interval + 250ms;
        for (;;) {
            auto beaten = std::make_shared<std::promise<Heartbeat::Beat>>();
            auto fut = beaten->get_future();
            rt->post([this, beaten] {
                parts->heartbeat.tick([beaten](const Heartbeat::Beat& b) { beaten->set_value(b); });
            });
            if (fut.wait_for(opts.command_timeout + 1s) != std::future_status::ready) return;
            auto beat = fut.get();
            if (!beat.held) return;
            auto now = clock_t::now();
            if (now >= deadline) {
                throw ServerIdInUse("server id '" + opts.id +
                                    "' is in use: another server with this id is running");
            }
            auto lapse = std::chrono::milliseconds(std::max<std::int64_t>(beat.held_for_ms, 0));
            auto pause =
                std::min({lapse + 20ms,
                          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                          std::chrono::milliseconds(opts.heartbeat_interval)});
            std::this_thread::sleep_for(std::max(pause, std::chrono::milliseconds(10)));
        }
    }

    void run_on_loop() {
        auto& p = *parts;
        p.reader.create_groups([&p] { p.reclaimer.recover_own([&p] { p.reader.start(); }); });
        p.heartbeat.start();
        p.reclaimer.start();
        p.lease_keeper.start();
        p.janitor.start();
        p.promoter.start();
        p.control.start();
    }

    void begin_stop() {
        parts->heartbeat.stop();
        parts->promoter.stop();
        parts->reclaimer.stop();
        parts->janitor.stop();
        parts->dispatcher.stop();
        parts->puller.stop();
        parts->reader.stop();
        publish();
    }

    template <class Pred>
    bool wait_state(Pred pred, std::chrono::steady_clock::time_point until) {
        std::unique_lock lock(state_mutex);
        return state_cv.wait_until(lock, until, pred);
    }
};

}  // namespace v1
}  // namespace streamfleet
