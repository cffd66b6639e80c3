// Client: wires the client components together and carries out the public Client methods.
//
// The parts, each in its own file pair under lib/client/:
//   caller's thread: TaskBuilder (validate, stamp) → encode_outgoing() (wire form)
//                    → Admission (bounded buffer; hands tasks to the loop);
//                    TaskOps (cancel, get, uniqueness: calls that wait);
//   loop thread:     Outbox (send in order, confirm, resend after outages),
//                    Listener (notifications → tracked handles), Heartbeat;
//   shared:          ClientContext (options, id, loop, topology, clock, queues),
//                    and the optional Spool.
// They know each other only through what this file passes them: Admission
// wakes the loop through a callback, whose drain() registers tracked handles
// with the Listener and gives the tasks to the Outbox; the Outbox reports
// confirmations through a callback that gives their room back to Admission,
// and refusals through one that tells the caller (refused()): the task's
// handle, enqueue_confirmed()'s wait, and ClientOptions::on_refused.
//
// Start order (constructor):
//   1. check the options and queue names, make the client id, open the spool
//      (learning what a crashed predecessor left in it);
//   2. start the loop thread;
//   3. on the loop: the stop hook (first, so a start that fails part-way
//      still closes what it made) → the topology (connecting in the
//      background) → the outbox, wired to the link's ready edge → the
//      listener (creates stream and group, then reads) → the heartbeat (first
//      beat now) → the spool's leftovers, counted into the buffer and sent
//      first, in their order.
//   Only then does the constructor return, so no enqueue can overtake the
//   leftovers, and a tracked task's handle always finds its listener.
//
// Close order (close(), idempotent; the destructor calls it):
//   1. refuse new tasks;
//   2. wait for the buffer to drain, bounded by the deadline (what is left is
//      not sent; with a spool, the next client sends it);
//   3. on the loop: no more resends, beats or notification reads; delete the
//      notification stream (its group goes with it) and this client's
//      heartbeat entries, waiting for the replies within what is left of the
//      deadline (at least 500 ms);
//   4. resolve the handles still open as closed (the tasks may still run; this
//      client will not hear of them), on the caller's thread;
//   5. stop the loop. Its stop hook closes the heartbeat → the outbox (handing
//      on its last confirmations) → the listener's connection → the topology,
//      failing whatever is pending; then the loop runs until every handle is
//      closed and its thread is joined.

#include "streamfleet/client.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <mutex>

#include "client/admission.hpp"
#include "client/context.hpp"
#include "client/encoder.hpp"
#include "client/heartbeat.hpp"
#include "client/listener.hpp"
#include "client/outbox.hpp"
#include "client/spool.hpp"
#include "client/task_builder.hpp"
#include "client/task_ops.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/uuid.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
using namespace detail::client;
using namespace std::chrono_literals;

struct Client::Impl {
    explicit Impl(const Clock& c) : clock(c) {}

    void open(ClientOptions options, const std::vector<std::string>& queue_names);
    std::vector<Spool::Pending> open_spool(const ClientOptions& options);
    void start_loop(std::vector<Spool::Pending>& leftovers);
    void replay(std::vector<Spool::Pending>& leftovers);
    void drain();
    void refused(Outgoing& task, const detail::Error& why);
    void accept(std::string_view queue, const QueueKeys& keys, const TaskMessage& m,
                std::shared_ptr<HandleState> handle, std::chrono::milliseconds unique_ttl,
                Outgoing::Stored stored = nullptr);
    void spool_append(std::string_view queue, const TaskMessage& m, std::size_t n_reserved,
                      std::size_t bytes);
    void remove_traces(std::chrono::milliseconds timeout, std::function<void()> done);

    const Clock& clock;
    std::unique_ptr<Spool> spool;
    // Queues of tasks replayed from the spool that this client did not
    // declare. Their keys must live as long as the outbox that points at them.
    QueueMap replayed_queues;
    std::unique_ptr<redis::Topology> topo;
    std::unique_ptr<ClientContext> ctx;
    // Any thread.
    std::unique_ptr<TaskBuilder> builder;
    std::unique_ptr<Admission> admission;
    std::unique_ptr<TaskOps> ops;
    // Loop thread: made on the loop, closed by its stop hook.
    std::unique_ptr<Outbox> outbox;
    std::unique_ptr<Listener> listener;
    std::unique_ptr<Heartbeat> heartbeat;
    std::vector<Outgoing> taken;  // drain()'s batch, kept to reuse its memory
    // Any thread: tasks accepted per queue, for metrics_text().
    std::mutex enqueued_mutex;
    std::map<std::string, std::uint64_t, std::less<>> enqueued;
    void count_enqueued(std::string_view queue, std::size_t n) {
        std::lock_guard lock(enqueued_mutex);
        auto it = enqueued.find(queue);
        if (it == enqueued.end()) it = enqueued.emplace(std::string(queue), 0).first;
        it->second += n;
    }
    // Declared last: destroyed first, so the loop thread is joined before
    // anything its callbacks use goes away.
    std::unique_ptr<Runtime> rt;
};

void Client::Impl::open(ClientOptions options, const std::vector<std::string>& queue_names) {
    if (auto st = validate_prefix(options.prefix); !st) throw_error(st.error());
    if (queue_names.empty()) throw InvalidArgument("a client needs at least one queue");
    const auto style = key_style(options.go_compatible);
    QueueMap queues;
    for (const auto& q : queue_names) {
        if (auto st = validate_queue_name(q, style); !st) throw_error(st.error());
        queues.emplace(q, QueueKeys(options.prefix, q, style));
    }
    if (options.max_buffered == 0) throw InvalidArgument("max_buffered is 0");
    if (auto st = redis::check_wait_replicas(options.wait_replicas.replicas,
                                             options.wait_replicas.timeout);
        !st) {
        throw_error(st.error());
    }
    if (options.heartbeat_interval.count() <= 0) {
        throw InvalidArgument("heartbeat_interval is not positive");
    }
    if (options.go_compatible && options.heartbeat_interval > std::chrono::minutes(5)) {
        // Go clients delete the notification stream of a client silent for 10 minutes.
        throw InvalidArgument("heartbeat_interval (" +
                              std::to_string(options.heartbeat_interval.count()) +
                              " ms) must be at most 5 minutes with go_compatible");
    }
    auto address = redis::parse_url(options.redis).value();
    auto id = UuidV7Generator(clock).next();
    auto receiver = receiver_key(options.prefix, id, style);
    auto leftovers = open_spool(options);
    for (const auto& p : leftovers) {
        if (!queues.count(p.queue)) {
            replayed_queues.emplace(p.queue, QueueKeys(options.prefix, p.queue, style));
        }
    }
    if (!leftovers.empty()) {
        log().info("client {}: sending {} task(s) left in spool {}", id, leftovers.size(),
                   options.spool_path);
    }

    rt = std::make_unique<Runtime>("sf-client");
    redis::ConnectionOptions co{.command_timeout = options.command_timeout,
                                .client_name = "streamfleet-client"};
    topo = rt->call([&] { return redis::make_topology(*rt, address, co).value(); });
    ctx = std::make_unique<ClientContext>(ClientContext{std::move(options), std::move(id),
                                                        std::move(receiver), clock, *rt, *topo,
                                                        std::move(queues)});
    builder = std::make_unique<TaskBuilder>(ctx->options, ctx->id, clock);
    admission = std::make_unique<Admission>(
        Admission::Limits{ctx->options.max_buffered, ctx->options.max_buffered_bytes,
                          ctx->options.full_timeout},
        ctx->id, [this] { return rt->post([this] { drain(); }); });
    ops = std::make_unique<TaskOps>(*ctx);
    rt->call([&] { start_loop(leftovers); });
}

std::vector<Spool::Pending> Client::Impl::open_spool(const ClientOptions& options) {
    if (options.spool_path.empty()) return {};
    auto opened =
        Spool::open(options.spool_path, options.spool_fsync ? SpoolSync::always : SpoolSync::none);
    if (!opened) throw_error(opened.error());
    spool = std::move(opened->first);
    for (const auto& p : opened->second) {
        if (auto st = validate_queue_name(p.queue, key_style(options.go_compatible)); !st) {
            throw_error(st.error());
        }
    }
    return std::move(opened->second);
}

void Client::Impl::start_loop(std::vector<Spool::Pending>& leftovers) {
    // The stop hook comes first, so a start that fails part-way still closes
    // what it made.
    rt->add_stop_hook([this] {
        if (heartbeat) heartbeat->close();
        if (outbox) outbox->close();
        if (listener) listener->close();
        topo->close();
    });
    topo->start();
    outbox = std::make_unique<Outbox>(
        *ctx, spool.get(),
        [this](std::size_t n, std::size_t bytes) { admission->release(n, bytes); },
        [this](Outgoing& task, const detail::Error& why) { refused(task, why); });
    topo->on_state([this](redis::ConnState st, const detail::Error*) {
        if (st == redis::ConnState::ready) outbox->link_up();
    });
    listener = std::make_unique<Listener>(*ctx);
    listener->start();
    heartbeat = std::make_unique<Heartbeat>(*ctx);
    heartbeat->start();
    replay(leftovers);
}

// What a crashed predecessor left in the spool goes first, in its order. It
// was accepted then, so it is counted in without a bound.
void Client::Impl::replay(std::vector<Spool::Pending>& leftovers) {
    std::vector<Outgoing> batch;
    batch.reserve(leftovers.size());
    std::size_t bytes = 0;
    for (const auto& p : leftovers) {
        auto it = ctx->queues.find(p.queue);
        const QueueKeys& k = it != ctx->queues.end() ? it->second : replayed_queues.at(p.queue);
        batch.push_back(encode_outgoing(p.msg, k, Admission::footprint(p.msg)));
        // The crashed client may have sent it: its resend is checked.
        batch.back().in_doubt = true;
        bytes += batch.back().bytes;
    }
    admission->count_in(batch.size(), bytes);
    outbox->submit(batch);
}

// Loop thread, once per batch handed off. Handles are registered before their
// tasks reach the outbox, so a notification can never come before its handle.
void Client::Impl::drain() {
    admission->take(taken);
    for (auto& o : taken) {
        if (o.handle) {
            // The outbox keeps its own reference to mark the task stored.
            o.handle->record_keys = o.record_keys;
            listener->track(o.handle);
        }
    }
    outbox->submit(taken);
    taken.clear();
}

// Loop thread: Redis refused `task` (the outbox has let it go). Every way
// the caller may be waiting hears of it.
void Client::Impl::refused(Outgoing& task, const detail::Error& why) {
    auto text = "Redis refused task " + task.id + ": " + why.message();
    if (task.handle)
        listener->resolve_now(task.id, TaskOutcome{TaskStatus::refused, why.message()});
    if (task.stored) tell_stored(task, std::make_exception_ptr(Refused(text, task.id)));
    if (!ctx->options.on_refused) {
        log().warn("client {}: {}", ctx->id, text);
        return;
    }
    try {
        ctx->options.on_refused(task.id, Refused(text, task.id));
    } catch (const std::exception& e) {
        log().error("client {}: on_refused threw: {}", ctx->id, e.what());
    } catch (...) {
        log().error("client {}: on_refused threw a non-standard exception", ctx->id);
    }
}

// Accepts one task: claims its uniqueness key first (so a duplicate is
// refused before anything else happens), then the spool (if any), then the
// buffer. A failure after the claim gives the key back.
void Client::Impl::accept(std::string_view queue, const QueueKeys& keys, const TaskMessage& m,
                          std::shared_ptr<HandleState> handle, std::chrono::milliseconds unique_ttl,
                          Outgoing::Stored stored) {
    // A chosen id is shared by every enqueue of it: the claim's holder must tell this one apart.
    const auto holder = m.unique == "id:" + m.id ? m.id + "#" + builder->nonce() : m.id;
    if (!m.unique.empty()) ops->claim_unique(keys, m, holder, unique_ttl);
    try {
        auto bytes = Admission::footprint(m);
        // With a spool, room is taken before the task is written to it: a task
        // in the spool must never be one the caller was told was refused.
        if (spool) {
            admission->reserve(1, bytes);
            spool_append(queue, m, 1, bytes);
        }
        auto out = encode_outgoing(m, keys, bytes);
        out.handle = std::move(handle);
        out.stored = std::move(stored);
        admission->hand_off(std::move(out), spool != nullptr);
        count_enqueued(queue, 1);
    } catch (...) {
        if (!m.unique.empty()) ops->release_unique(keys, m, holder);
        throw;
    }
}

// Writes the task to the spool before enqueue returns; when that fails the
// task is not accepted, and the room reserved for it is given back.
void Client::Impl::spool_append(std::string_view queue, const TaskMessage& m,
                                std::size_t n_reserved, std::size_t bytes) {
    if (auto st = spool->append(queue, m); !st) {
        admission->release(n_reserved, bytes);
        throw_error(st.error());
    }
}

void Client::Impl::remove_traces(std::chrono::milliseconds timeout, std::function<void()> done) {
    outbox->stop();
    heartbeat->stop();
    listener->stop();
    auto remaining = std::make_shared<int>(2);
    auto one = [remaining, done = std::move(done)] {
        if (--*remaining == 0) done();
    };
    redis::CommandOptions o{.timeout = timeout};
    listener->delete_stream(o, one);
    heartbeat->clear(o, one);
}

// ---- public ----

Client::Client(ClientOptions options, std::vector<std::string> queues)
    : impl_(std::make_unique<Impl>(SystemClock::instance())) {
    impl_->open(std::move(options), queues);
}

Client::~Client() {
    try {
        close();
    } catch (const std::exception& e) {
        log().error("client close failed: {}", e.what());
    }
}

const std::string& Client::id() const noexcept { return impl_->ctx->id; }

std::uint64_t Client::unknown_notifications() const noexcept { return impl_->listener->unknown(); }

std::size_t Client::buffered() const { return impl_->admission->buffered(); }

TaskId Client::enqueue(std::string_view queue, std::string_view data, const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.ctx->keys_for(queue);
    auto m = im.builder->build(data, opts, false);
    im.accept(queue, keys, m, nullptr, TaskBuilder::unique_window(opts));
    return std::move(m.id);
}

TaskId Client::enqueue_confirmed(std::string_view queue, std::string_view data,
                                 const TaskOptions& opts, std::chrono::milliseconds timeout) {
    auto& im = *impl_;
    if (im.rt->in_loop_thread()) {
        throw InvalidArgument(
            "enqueue_confirmed cannot be called from an on_done or on_refused callback (the "
            "client's own loop thread, which it would wait for)");
    }
    const auto& keys = im.ctx->keys_for(queue);
    auto m = im.builder->build(data, opts, false);
    auto stored = std::make_shared<std::promise<void>>();
    auto fut = stored->get_future();
    im.accept(queue, keys, m, nullptr, TaskBuilder::unique_window(opts),
              [stored = std::move(stored)](const std::string&, std::exception_ptr why) {
                  if (why) {
                      stored->set_exception(std::move(why));
                  } else {
                      stored->set_value();
                  }
              });
    if (fut.wait_for(timeout) != std::future_status::ready) {
        throw TimeoutError("task " + m.id + " was not confirmed by Redis within " +
                           std::to_string(timeout.count()) +
                           " ms; it stays buffered and is still sent");
    }
    try {
        fut.get();
    } catch (const std::future_error&) {
        throw ClosedError("client " + im.ctx->id + " closed before Redis confirmed task " + m.id);
    }
    return std::move(m.id);
}

TaskId Client::enqueue_async(std::string_view queue, std::string_view data,
                             const TaskOptions& opts, StoredCallback on_stored) {
    if (!on_stored) throw InvalidArgument("enqueue_async needs an on_stored callback");
    auto& im = *impl_;
    const auto& keys = im.ctx->keys_for(queue);
    auto m = im.builder->build(data, opts, false);
    im.accept(queue, keys, m, nullptr, TaskBuilder::unique_window(opts), std::move(on_stored));
    return std::move(m.id);
}

TaskHandle Client::enqueue_tracked(std::string_view queue, std::string_view data,
                                   const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.ctx->keys_for(queue);
    auto m = im.builder->build(data, opts, true);
    auto state = std::make_shared<HandleState>(m.id);
    im.accept(queue, keys, m, state, TaskBuilder::unique_window(opts));
    return TaskHandle(std::move(state));
}

std::vector<TaskId> Client::enqueue_many(std::string_view queue,
                                         const std::vector<std::string>& data,
                                         const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.ctx->keys_for(queue);
    TaskBuilder::check_many(opts);
    std::vector<TaskMessage> msgs;
    msgs.reserve(data.size());
    for (const auto& d : data) msgs.push_back(im.builder->build(d, opts, false));
    std::size_t bytes = 0;
    for (const auto& m : msgs) bytes += Admission::footprint(m);
    if (im.spool) {
        im.admission->reserve(msgs.size(), bytes);
        // One write for the whole batch: a failure leaves none of it in the
        // spool, since the caller is told none was accepted.
        if (auto st = im.spool->append_many(queue, msgs); !st) {
            im.admission->release(msgs.size(), bytes);
            throw_error(st.error());
        }
    }
    std::vector<TaskId> out;
    out.reserve(msgs.size());
    std::vector<Outgoing> batch;
    batch.reserve(msgs.size());
    for (auto& m : msgs) {
        out.push_back(m.id);
        batch.push_back(encode_outgoing(m, keys, Admission::footprint(m)));
    }
    // One hand-off: the loop issues every command in one turn, so they leave in one write.
    im.admission->hand_off(batch, im.spool != nullptr);
    im.count_enqueued(queue, out.size());
    return out;
}

std::string Client::metrics_text() const {
    auto& im = *impl_;
    PromText p;
    p.family("streamfleet_tasks_enqueued_total", "counter",
             "Tasks this client accepted (enqueue returned their id).");
    std::lock_guard lock(im.enqueued_mutex);
    for (const auto& [queue, n] : im.enqueued) {
        p.sample("streamfleet_tasks_enqueued_total", "queue", queue, static_cast<double>(n));
    }
    return p.text();
}

CancelResult Client::cancel(std::string_view queue, std::string_view id) {
    return impl_->ops->cancel(queue, id);
}

TaskInfo Client::get(std::string_view queue, std::string_view id) {
    return impl_->ops->get(queue, id);
}

bool Client::close(std::chrono::milliseconds deadline) {
    auto& im = *impl_;
    if (!im.admission->close()) return true;
    auto until = std::chrono::steady_clock::now() + deadline;
    bool flushed = im.admission->wait_drained(until);
    if (!flushed) {
        log().warn("client {}: closing with {} task(s) not confirmed by Redis; they are not sent",
                   im.ctx->id, im.admission->buffered());
    }
    auto left =
        std::max<std::chrono::milliseconds>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                until - std::chrono::steady_clock::now()),
                                            500ms);
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    bool posted =
        im.rt->post([&im, done, left] { im.remove_traces(left, [done] { done->set_value(); }); });
    if (posted) fut.wait_for(left + 1s);
    // Every hand-off's drain was posted before this call, so every tracked
    // handle is with the listener by now.
    auto open = im.rt->call([&im] { return im.listener->take_open(); });
    for (auto& h : open) {
        h->resolve(TaskOutcome{TaskStatus::closed,
                               "the client closed before the outcome arrived; the task may still "
                               "run"});
    }
    im.rt->stop();
    return flushed;
}

}  // namespace v1
}  // namespace streamfleet
