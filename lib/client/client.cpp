// Client: responsible for the enqueue path (validate → accept locally → XADD,
// pipelined, resent until Redis has it), the notification listener that
// resolves tracked handles, and heartbeats into P{Q}:clients.
//
// Threads: public methods run on the caller's thread and only validate, count
// and post; everything touching Redis runs on the client's own Runtime loop.
// Shutdown order (close): refuse new tasks → wait for the buffer to drain
// (bounded) → stop heartbeats → delete the notification stream (with its group)
// and the heartbeat entries → cancel open handles → close connections → stop
// the loop.

#include "streamfleet/client.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <type_traits>
#include <unordered_map>

#include "client/handle_state.hpp"
#include "client/spool.hpp"
#include "core/keys.hpp"
#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "core/uuid.hpp"
#include "core/wire.hpp"
#include "redis/resp.hpp"
#include "redis/script_runner.hpp"
#include "redis/streams.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
using namespace std::chrono_literals;
namespace r = detail::redis;

struct Client::Impl {
    // A task in the outbox (see "the outbox" below).
    // The XADD is encoded on the caller's thread: formatting is most of the
    // per-task work, and the loop thread (which also reads every reply) is
    // the one that must not be the bottleneck.
    struct Outgoing {
        TaskId id;
        const std::string* stream;
        // How it is sent: a plain XADD (cmd is the whole command, as RESP);
        // batchable (record_key set: cmd holds only this task's arguments to
        // scripts::enqueue, batched with the others of its loop turn); or a
        // script call of its own (delayed tasks, `script`).
        std::string cmd;
        std::string record_key;
        std::size_t batch_args = 0;
        std::optional<ScriptCall> script;
        std::size_t bytes;
        bool sent = false;
        bool done = false;
    };

    static std::unique_ptr<Outgoing> outgoing(const TaskMessage& m, const QueueKeys& keys,
                                              std::size_t bytes) {
        const std::string& stream = keys.stream();
        auto o = std::make_unique<Outgoing>(Outgoing{m.id, &stream, {}, {}, 0, {}, bytes});
        const std::string notify = m.send_notif ? m.client_id : std::string();
        if (m.run_at_ms > 0) {
            // Delayed: into P{Q}:delayed (and a nudge), the same member form
            // the server's retries use, so one promoter serves both.
            std::vector<std::string> parts;
            visit_fields(m, [&parts](std::string_view f, auto v) {
                parts.emplace_back(f);
                if constexpr (std::is_same_v<decltype(v), std::string_view>) parts.emplace_back(v);
                else parts.push_back(std::to_string(v));
            });
            calls::Record rec{m.id, m.enqueued_ts, notify, m.retention_ms};
            o->script = calls::schedule(keys, m.run_at_ms, encode_msgpack(parts), m.state ? &rec : nullptr);
            return o;
        }
        std::size_t nargs = 3, size = stream.size();
        visit_fields(m, [&](std::string_view f, auto v) {
            nargs += 2;
            size += f.size();
            if constexpr (std::is_same_v<decltype(v), std::string_view>) size += v.size();
        });
        if (m.state) {
            // The XADD and the task's state record together, batched with the
            // others of its loop turn (scripts::enqueue, see transmit()).
            o->record_key = keys.task(m.id);
            o->cmd.reserve(size + 16 * nargs + 128);
            r::CommandWriter w(o->cmd);
            w.arg(m.enqueued_ts);
            w.arg(notify);
            w.arg(m.retention_ms);
            w.arg(static_cast<std::int64_t>(nargs - 3));
            visit_fields(m, [&w](std::string_view f, auto v) {
                w.arg(f);
                w.arg(v);
            });
            o->batch_args = 4 + (nargs - 3);
            return o;
        }
        r::CommandWriter w(o->cmd, nargs, size);
        w.arg("XADD");
        w.arg(stream);
        w.arg("*");
        visit_fields(m, [&w](std::string_view f, auto v) {
            w.arg(f);
            w.arg(v);
        });
        return o;
    }

    ClientOptions opts;
    std::string id;
    std::string receiver;
    std::map<std::string, QueueKeys, std::less<>> queues;
    UuidV7Generator ids;

    // Loop-thread state.
    std::unique_ptr<r::Topology> topo;
    std::shared_ptr<r::Connection> listener;
    std::unique_ptr<Timer> heartbeat;
    std::unique_ptr<Timer> resend_timer;
    std::unique_ptr<Timer> listen_timer;
    // Owns every task until Redis confirms it; callbacks hold raw pointers,
    // which stay valid because an entry leaves only once its reply is in.
    std::deque<std::unique_ptr<Outgoing>> outbox;
    bool link_down = false;
    bool stopping = false;
    // Confirmations of one loop turn are handed to waiting callers at once.
    std::unique_ptr<TurnEnd> confirm_flush;
    std::size_t confirm_n = 0, confirm_bytes = 0;

    // Shared between threads.
    std::mutex mutex;
    std::condition_variable drained;
    std::condition_variable space;
    std::size_t buffered = 0;        // tasks accepted, not yet confirmed by Redis
    std::size_t buffered_bytes = 0;  // their footprint
    bool closed = false;
    std::unordered_map<std::string, std::shared_ptr<HandleState>> tracked;
    // Accepted tasks on their way to the loop thread, in acceptance order. One
    // post per batch: only the caller that finds it empty wakes the loop.
    std::vector<std::unique_ptr<Outgoing>> incoming;
    std::atomic<std::uint64_t> unknown{0};

    std::unique_ptr<Spool> spool;
    // Queues of tasks replayed from the spool that this client did not declare.
    std::map<std::string, QueueKeys, std::less<>> spooled_queues;

    // Writes the task to the spool (if any) before enqueue returns; on failure
    // the task is not accepted.
    void spool_task(std::string_view queue, const TaskMessage& m, std::size_t n_admitted, std::size_t bytes) {
        if (!spool) return;
        if (auto st = spool->append(queue, m); !st) {
            confirmed(n_admitted, bytes);
            throw_error(st.error());
        }
    }

    // Declared last: destroyed first, so the loop thread is joined before the
    // state above that its callbacks use goes away.
    std::unique_ptr<Runtime> rt;

    const QueueKeys& keys_for(std::string_view queue) const {
        auto it = queues.find(queue);
        if (it == queues.end()) {
            std::string declared;
            for (const auto& [name, _] : queues) declared += (declared.empty() ? "" : ", ") + name;
            throw UnknownQueue("queue '" + std::string(queue) +
                               "' was not declared when this client was created (declared: " +
                               declared + ")");
        }
        return it->second;
    }

    std::shared_ptr<TaskMessage> make_message(std::string_view data, const TaskOptions& o,
                                              bool tracked_task) {
        if (data.size() > opts.max_payload_bytes) {
            throw InvalidArgument("payload is " + std::to_string(data.size()) +
                                  " bytes; max_payload_bytes is " +
                                  std::to_string(opts.max_payload_bytes));
        }
        if (o.retry_delay.count() < 0) throw InvalidArgument("retry_delay is negative");
        if (o.expires_in.count() < 0) throw InvalidArgument("expires_in is negative");
        auto m = std::make_shared<TaskMessage>();
        auto now = SystemClock::instance().now_ms();
        m->id = ids.next();
        m->client_id = id;
        m->data = std::string(data);
        m->max_retries = o.max_retries;
        m->retry_delay_ms = o.retry_delay.count();
        m->send_notif = tracked_task;
        m->enqueued_ts = now;
        if (o.delay.count() < 0) throw InvalidArgument("delay is negative");
        if (o.run_timeout.count() < 0) throw InvalidArgument("run_timeout is negative");
        if (o.backoff_max.count() < 0) throw InvalidArgument("backoff_max is negative");
        std::int64_t due = o.delay.count() > 0 ? now + o.delay.count() : 0;
        if (o.run_at) {
            auto at = std::chrono::duration_cast<std::chrono::milliseconds>(
                          o.run_at->time_since_epoch())
                          .count();
            if (at <= 0) throw InvalidArgument("run_at is not after the unix epoch");
            due = std::max(due, at);
        }
        // A due time already past runs at once, like no delay at all.
        m->run_at_ms = due > now ? due : 0;
        m->timeout_ms = o.run_timeout.count();
        if (o.retention && o.retention->count() < 0) throw InvalidArgument("retention is negative");
        if (!o.unique_key.empty() && o.unique_ttl.count() <= 0) {
            throw InvalidArgument("unique_ttl must be positive when unique_key is set");
        }
        m->unique = o.unique_key;
        m->state = opts.track_state;
        if (m->state) m->retention_ms = o.retention ? o.retention->count() : kDefaultRetentionMs;
        if (o.backoff) {
            switch (*o.backoff) {
                case Backoff::fixed: m->backoff = BackoffKind::fixed; break;
                case Backoff::linear: m->backoff = BackoffKind::linear; break;
                case Backoff::exponential: m->backoff = BackoffKind::exponential; break;
            }
            m->backoff_max_ms = o.backoff_max.count();
        }
        std::int64_t expires = 0;
        if (o.expires_in.count() > 0) expires = now + o.expires_in.count();
        if (o.expires_at) {
            auto at = std::chrono::duration_cast<std::chrono::milliseconds>(
                          o.expires_at->time_since_epoch())
                          .count();
            if (at <= 0) throw InvalidArgument("expires_at is not after the unix epoch");
            expires = expires == 0 ? at : std::min(expires, at);
        }
        m->expires_ts = expires;
        return m;
    }

    // Bytes a task holds in the buffer: its payload plus a rough allowance for
    // the fields and bookkeeping around it.
    static std::size_t footprint(const TaskMessage& m) { return m.data.size() + 256; }

    // Counts tasks into the buffer, waiting up to opts.full_timeout for room;
    // throws QueueFull (no room in time) or ClosedError.
    void admit(std::size_t n, std::size_t bytes) {
        std::unique_lock lock(mutex);
        admit_locked(lock, n, bytes);
    }

    void admit_locked(std::unique_lock<std::mutex>& lock, std::size_t n, std::size_t bytes) {
        auto fits = [&] {
            return closed || (buffered + n <= opts.max_buffered &&
                              (buffered == 0 || buffered_bytes + bytes <= opts.max_buffered_bytes));
        };
        if (!fits() && opts.full_timeout.count() > 0) space.wait_for(lock, opts.full_timeout, fits);
        if (closed) throw ClosedError("client " + id + " is closed");
        if (!fits()) {
            throw QueueFull("client buffer holds " + std::to_string(buffered) + " tasks (" +
                            std::to_string(buffered_bytes) + " bytes) not yet in Redis; max_buffered is " +
                            std::to_string(opts.max_buffered) + ", max_buffered_bytes " +
                            std::to_string(opts.max_buffered_bytes));
        }
        buffered += n;
        buffered_bytes += bytes;
    }

    // Admits `batch` (waiting per full_timeout) unless the caller already
    // did, registers `handle` if given, and queues the batch for the loop
    // thread -- all under one lock, so acceptance order is outbox order.
    // Throws QueueFull or ClosedError (releasing the admission either way).
    void accept(std::vector<std::unique_ptr<Outgoing>>& batch, std::size_t bytes,
                const std::shared_ptr<HandleState>& handle, bool admitted) {
        std::unique_lock lock(mutex);
        if (!admitted) {
            admit_locked(lock, batch.size(), bytes);
        } else if (closed) {
            release_locked(batch.size(), bytes);
            throw ClosedError("client " + id + " is closed");
        }
        bool wake = incoming.empty();
        for (auto& o : batch) incoming.push_back(std::move(o));
        if (handle) tracked.emplace(handle->id, handle);
        // Posting under the lock: close() sets `closed` under it before it
        // stops the runtime, so this post cannot meet a stopped one.
        if (wake && !rt->post([this] { take_incoming(); })) {
            incoming.resize(incoming.size() - batch.size());
            if (handle) tracked.erase(handle->id);
            release_locked(batch.size(), bytes);
            throw ClosedError("client " + id + " is closed");
        }
    }

    // Claims `key` for task `id` for `ttl`; throws Duplicate naming the holder.
    void claim_unique(const QueueKeys& keys, const TaskMessage& m, std::chrono::milliseconds ttl) {
        auto reply = r::call(*rt, *topo, calls::unique_claim(keys, m.unique, m.id, ttl.count())).value();
        if (reply.size() >= 1 && reply[0].integer() == 1) return;
        std::string holder = reply.size() >= 2 && reply[1].is_string() ? std::string(reply[1].str()) : "";
        throw Duplicate("a task with unique_key '" + m.unique + "' was enqueued within its unique_ttl: " +
                            (holder.empty() ? "(window just ended; try again)" : holder),
                        holder);
    }

    // Gives a claimed key back when the task it was claimed for was refused.
    void release_unique(const QueueKeys& keys, const TaskMessage& m) {
        (void)r::call(*rt, *topo, calls::unique_release(keys, m.unique, m.id));
    }

    // Accepts one task: claims its uniqueness key first (so a duplicate is
    // refused before anything else happens), then the spool (if any), then
    // the buffer. A failure after the claim gives the key back.
    void accept_one(std::string_view queue, const QueueKeys& keys, const TaskMessage& m,
                    const std::shared_ptr<HandleState>& handle, std::chrono::milliseconds unique_ttl) {
        if (!m.unique.empty()) claim_unique(keys, m, unique_ttl);
        try {
            auto bytes = footprint(m);
            // With a spool, room is taken before the task is written to it: a
            // task in the spool must never be one the caller was told was refused.
            if (spool) {
                admit(1, bytes);
                spool_task(queue, m, 1, bytes);
            }
            std::vector<std::unique_ptr<Outgoing>> batch;
            batch.push_back(outgoing(m, keys, bytes));
            accept(batch, bytes, handle, spool != nullptr);
        } catch (...) {
            if (!m.unique.empty()) release_unique(keys, m);
            throw;
        }
    }

    void take_incoming() {
        std::vector<std::unique_ptr<Outgoing>> batch;
        {
            std::lock_guard lock(mutex);
            batch.swap(incoming);
        }
        submit(batch);
    }

    void release_locked(std::size_t n, std::size_t bytes) {
        buffered -= n;
        buffered_bytes -= bytes;
        space.notify_all();
        if (buffered == 0) drained.notify_all();
    }

    void confirmed(std::size_t n, std::size_t bytes) {
        std::lock_guard lock(mutex);
        release_locked(n, bytes);
    }

    // ---- loop thread: the outbox ----
    //
    // Tasks wait in `outbox`, in acceptance order, until Redis confirms their
    // XADD. While the link works they are sent at once (pipelined). The first
    // failed XADD marks the link down: nothing new is sent, failed tasks are
    // marked unsent, and when the connection is back (its "ready" edge, or the
    // retry timer) every unsent task is sent again in outbox order — so a
    // buffer filled during an outage drains in order. A lost connection may
    // mean an XADD did run; the resend then duplicates that task, which
    // at-least-once delivery allows. Accepted tasks are never dropped.

    void submit(std::vector<std::unique_ptr<Outgoing>>& batch) {
        std::vector<Outgoing*> fresh;
        fresh.reserve(batch.size());
        for (auto& o : batch) {
            fresh.push_back(o.get());
            outbox.push_back(std::move(o));
        }
        if (!link_down) transmit(fresh);
    }

    // Sends `tasks` in order: each plain command or script call on its own,
    // and runs of batchable ones (same stream) as one scripts::enqueue call each.
    void transmit(const std::vector<Outgoing*>& tasks) {
        constexpr std::size_t kMaxBatch = 256;
        constexpr std::size_t kMaxBatchBytes = std::size_t{1} << 20;
        std::vector<Outgoing*> run;
        std::size_t run_bytes = 0;
        auto flush_run = [&] {
            if (!run.empty()) send(std::move(run), false);
            run.clear();
            run_bytes = 0;
        };
        for (Outgoing* o : tasks) {
            if (o->batch_args == 0) {
                flush_run();
                send(std::vector<Outgoing*>{o}, false);
                continue;
            }
            if (!run.empty() && (run.front()->stream != o->stream || run.size() >= kMaxBatch ||
                                 run_bytes + o->cmd.size() > kMaxBatchBytes)) {
                flush_run();
            }
            run.push_back(o);
            run_bytes += o->cmd.size();
        }
        flush_run();
    }

    // The command that carries `tasks`: one plain XADD, one script call, or
    // one scripts::enqueue call for a run of batchable tasks. `by_body`: EVAL
    // instead of EVALSHA, after a NOSCRIPT.
    static std::string command_for(const std::vector<Outgoing*>& tasks, bool by_body) {
        const Outgoing& first = *tasks.front();
        if (first.script) {
            std::string cmd;
            r::append_command(cmd, first.script->argv(by_body));
            return cmd;
        }
        if (first.batch_args == 0) return first.cmd;
        std::size_t nargs = 0, bytes = 0;
        for (auto* o : tasks) {
            nargs += o->batch_args;
            bytes += o->cmd.size() + o->record_key.size() + 16;
        }
        std::string cmd;
        cmd.reserve(bytes + first.stream->size() + 128 + (by_body ? scripts::enqueue.body.size() : 0));
        r::append_script_head(cmd, scripts::enqueue, by_body, 1 + tasks.size(), nargs);
        r::CommandWriter w(cmd);
        w.arg(*first.stream);
        for (auto* o : tasks) w.arg(o->record_key);
        for (auto* o : tasks) cmd += o->cmd;
        return cmd;
    }

    // One command carrying `tasks`: all confirmed by its reply, or all unsent
    // again (and resent in outbox order once the link is back).
    void send(std::vector<Outgoing*> tasks, bool by_body) {
        for (auto* o : tasks) o->sent = true;
        const std::string& stream = *tasks.front()->stream;
        auto cmd = command_for(tasks, by_body);
        r::Route route{tasks.front()->script ? tasks.front()->script->route_key() : std::string_view(stream)};
        topo->send_encoded(route, cmd, [this, tasks = std::move(tasks), by_body](Result<r::Reply> res) mutable {
            if (res.ok()) {
                for (auto* o : tasks) {
                    o->done = true;
                    if (spool) spool->confirm(o->id);
                    confirm_n += 1;
                    confirm_bytes += o->bytes;
                }
                while (!outbox.empty() && outbox.front()->done) outbox.pop_front();  // frees them
                if (confirm_flush) confirm_flush->arm();
                return;
            }
            if (!by_body && res.error().is(reply_errc::noscript)) {
                // This node has not seen the script yet (or restarted empty):
                // EVAL it once, which caches it there for the EVALSHAs after.
                send(std::move(tasks), true);
                return;
            }
            for (auto* o : tasks) o->sent = false;
            if (!link_down) {
                link_down = true;
                log().warn("client {}: Redis unreachable, buffering tasks: {}", id, res.error().message());
            }
            if (!stopping && !resend_timer->active()) resend_timer->start(500, [this] { resume(); });
        });
    }

    void resume() {
        if (stopping) return;
        link_down = false;
        std::vector<Outgoing*> unsent;
        for (auto& o : outbox) {
            if (!o->sent && !o->done) unsent.push_back(o.get());
        }
        transmit(unsent);
    }

    void beat() {
        auto now = std::to_string(SystemClock::instance().now_ms());
        for (const auto& [_, k] : queues) {
            topo->send(r::Route{k.clients()}, {"ZADD", k.clients(), now, id}, [](Result<r::Reply>) {});
        }
        heartbeat->start(static_cast<std::uint64_t>(opts.heartbeat_interval.count()),
                         [this] { beat(); });
    }

    void listen() {
        if (stopping) return;
        listener->send(
            {"XREADGROUP", "GROUP", kClientGroup, id, "COUNT", "256", "BLOCK", "5000", "STREAMS",
             receiver, ">"},
            [this](Result<r::Reply> res) { on_notifications(std::move(res)); },
            r::CommandOptions{.timeout = 0ms, .block = 5000ms});
    }

    void on_notifications(Result<r::Reply> res) {
        if (stopping) return;
        if (!res.ok()) {
            const auto& e = res.error();
            if (e.is(errc::reply_error) && e.message().starts_with("NOGROUP")) {
                // The stream or group vanished (deleted, or Redis restarted
                // without persistence): recreate both and read on.
                create_group([this] { listen(); });
                return;
            }
            if (e.is(errc::closed)) return;
            log().debug("client {}: notification read failed: {}", id, e.message());
            retry_listen_after(200);
            return;
        }
        std::vector<std::string_view> ack{"XACK", receiver, kClientGroup};
        std::string_view last;
        // Every entry is acked, parsable or not: a broken notification must not
        // be read again forever.
        r::for_each_entry(*res, [&](std::string_view, const r::StreamEntry& e) {
            ack.push_back(e.id);
            last = e.id;
            handle_entry(e);
        });
        if (!last.empty()) {
            // Trim what has been read. This client is the stream's only reader
            // and reads it in order, so everything up to `last` is done with:
            // one XTRIM MINID drops it by whole nodes, where XDEL would search
            // the stream once per id.
            topo->send(r::Route{receiver}, ack, [](Result<r::Reply>) {});
            if (auto after = r::next_stream_id(last)) {
                topo->send(r::Route{receiver}, {"XTRIM", receiver, "MINID", *after},
                           [](Result<r::Reply>) {});
            }
        }
        listen();
    }

    void handle_entry(const r::StreamEntry& entry) {
        const auto& fields = entry.fields;
        auto n = decode_notification(fields);
        if (!n) {
            log().warn("client {}: malformed notification {} dropped: {}", id, entry.id,
                       n.error().message());
            unknown.fetch_add(1);
            return;
        }
        std::shared_ptr<HandleState> h;
        {
            std::lock_guard lock(mutex);
            auto it = tracked.find(n->task_id);
            if (it != tracked.end()) {
                h = std::move(it->second);
                tracked.erase(it);
            }
        }
        if (!h) {
            unknown.fetch_add(1);
            log().debug("client {}: notification for unknown task {}", id, n->task_id);
            return;
        }
        TaskOutcome out;
        switch (n->type) {
            case NotificationType::completed: out.status = TaskStatus::completed; break;
            case NotificationType::error: out.status = TaskStatus::error; break;
            case NotificationType::expired: out.status = TaskStatus::expired; break;
            case NotificationType::canceled: out.status = TaskStatus::canceled; break;
        }
        out.error = std::move(n->err_msg);
        h->resolve(std::move(out));
    }

    void retry_listen_after(std::uint64_t ms) {
        listen_timer->start(ms, [this] { listen(); });
    }

    template <class Then>
    void create_group(Then then) {
        r::ensure_group(*topo, receiver, kClientGroup, "0", [this, then](Status st) {
            if (!st) log().debug("client {}: creating group failed: {}", id, st.error().message());
            if (!stopping) then();
        });
    }
};

// ---- public ----

Client::Client(ClientOptions options, std::vector<std::string> queue_names)
    : impl_(std::make_unique<Impl>()) {
    auto& im = *impl_;
    im.opts = std::move(options);
    if (auto st = validate_prefix(im.opts.prefix); !st) throw_error(st.error());
    if (queue_names.empty()) throw InvalidArgument("a client needs at least one queue");
    for (const auto& q : queue_names) {
        if (auto st = validate_queue_name(q); !st) throw_error(st.error());
        im.queues.emplace(q, QueueKeys(im.opts.prefix, q));
    }
    if (im.opts.max_buffered == 0) throw InvalidArgument("max_buffered is 0");
    if (im.opts.heartbeat_interval.count() <= 0) throw InvalidArgument("heartbeat_interval is not positive");
    auto address = redis::parse_url(im.opts.redis).value();
    im.id = im.ids.next();
    im.receiver = receiver_key(im.opts.prefix, im.id);
    std::vector<Spool::Pending> leftovers;
    if (!im.opts.spool_path.empty()) {
        auto opened = Spool::open(im.opts.spool_path,
                                  im.opts.spool_fsync ? SpoolSync::always : SpoolSync::none);
        if (!opened) throw_error(opened.error());
        im.spool = std::move(opened->first);
        leftovers = std::move(opened->second);
        for (const auto& p : leftovers) {
            if (auto st = validate_queue_name(p.queue); !st) throw_error(st.error());
            if (!im.queues.count(p.queue)) im.spooled_queues.emplace(p.queue, QueueKeys(im.opts.prefix, p.queue));
        }
        if (!leftovers.empty()) {
            log().info("client {}: sending {} task(s) left in spool {}", im.id, leftovers.size(),
                       im.opts.spool_path);
        }
    }
    im.rt = std::make_unique<Runtime>("sf-client");
    im.rt->call([&] {
        r::ConnectionOptions co{.command_timeout = im.opts.command_timeout,
                                .client_name = "streamfleet-client"};
        im.topo = r::make_topology(*im.rt, address, co).value();
        im.topo->on_state([&im](r::ConnState st, const detail::Error*) {
            if (st == r::ConnState::ready && im.link_down) im.resume();
        });
        im.topo->start();
        im.heartbeat = std::make_unique<Timer>(im.rt->loop());
        im.resend_timer = std::make_unique<Timer>(im.rt->loop());
        im.listen_timer = std::make_unique<Timer>(im.rt->loop());
        im.confirm_flush = std::make_unique<TurnEnd>(im.rt->loop(), [&im] {
            auto n = std::exchange(im.confirm_n, 0);
            auto bytes = std::exchange(im.confirm_bytes, 0);
            if (n > 0) im.confirmed(n, bytes);
        });
        im.listener = im.topo->dedicated(r::Route{im.receiver}, "notifications");
        im.create_group([&im] { im.listen(); });
        im.beat();
        // What a crashed predecessor left in the spool goes first, in order.
        std::vector<std::unique_ptr<Impl::Outgoing>> replay;
        for (auto& p : leftovers) {
            auto it = im.queues.find(p.queue);
            const QueueKeys& k = it != im.queues.end() ? it->second : im.spooled_queues.at(p.queue);
            auto bytes = Impl::footprint(p.msg);
            {
                std::lock_guard lock(im.mutex);
                im.buffered += 1;
                im.buffered_bytes += bytes;
            }
            replay.push_back(Impl::outgoing(p.msg, k, bytes));
        }
        im.submit(replay);
        im.rt->add_stop_hook([&im] {
            im.stopping = true;
            im.heartbeat.reset();
            im.resend_timer.reset();
            if (im.confirm_n > 0) im.confirmed(std::exchange(im.confirm_n, 0), std::exchange(im.confirm_bytes, 0));
            im.confirm_flush.reset();
            im.listen_timer.reset();
            if (im.listener) im.listener->close();
            if (im.topo) im.topo->close();
        });
    });
}

Client::~Client() {
    try {
        close();
    } catch (const std::exception& e) {
        log().error("client close failed: {}", e.what());
    }
}

const std::string& Client::id() const noexcept { return impl_->id; }

std::uint64_t Client::unknown_notifications() const noexcept { return impl_->unknown.load(); }

std::size_t Client::buffered() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->buffered;
}

TaskId Client::enqueue(std::string_view queue, std::string_view data, const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.keys_for(queue);
    auto m = im.make_message(data, opts, false);
    im.accept_one(queue, keys, *m, nullptr, opts.unique_ttl);
    return m->id;
}

TaskHandle Client::enqueue_tracked(std::string_view queue, std::string_view data,
                                   const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.keys_for(queue);
    auto m = im.make_message(data, opts, true);
    auto state = std::make_shared<HandleState>(m->id);
    // Registered in the same critical section that queues the XADD: a fast
    // worker's notification must find it.
    im.accept_one(queue, keys, *m, state, opts.unique_ttl);
    return TaskHandle(state);
}

std::vector<TaskId> Client::enqueue_many(std::string_view queue, const std::vector<std::string>& data,
                                         const TaskOptions& opts) {
    auto& im = *impl_;
    const auto& keys = im.keys_for(queue);
    if (!opts.unique_key.empty()) {
        throw InvalidArgument("unique_key names one task; enqueue_many would make all but the first duplicates");
    }
    std::vector<std::shared_ptr<TaskMessage>> msgs;
    msgs.reserve(data.size());
    for (const auto& d : data) msgs.push_back(im.make_message(d, opts, false));
    std::size_t bytes = 0;
    for (const auto& m : msgs) bytes += Impl::footprint(*m);
    if (im.spool) {
        im.admit(msgs.size(), bytes);
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            if (auto st = im.spool->append(queue, *msgs[i]); !st) {
                // The ones already written are accepted; so is nothing after.
                im.confirmed(msgs.size(), bytes);
                throw_error(st.error());
            }
        }
    }
    std::vector<TaskId> out;
    out.reserve(msgs.size());
    std::vector<std::unique_ptr<Impl::Outgoing>> batch;
    batch.reserve(msgs.size());
    for (auto& m : msgs) {
        out.push_back(m->id);
        batch.push_back(Impl::outgoing(*m, keys, Impl::footprint(*m)));
    }
    // One batch: all XADDs are issued in one loop turn, so they leave in one write.
    im.accept(batch, bytes, nullptr, im.spool != nullptr);
    return out;
}

namespace {

std::int64_t to_i64(const std::string& s) { return std::strtoll(s.c_str(), nullptr, 10); }

TaskState parse_state(std::string_view s) {
    for (auto st : {TaskState::delayed, TaskState::ready, TaskState::active, TaskState::completed,
                    TaskState::failed, TaskState::dead, TaskState::expired, TaskState::canceled}) {
        if (to_string(st) == s) return st;
    }
    return TaskState::unknown;
}

}  // namespace

CancelResult Client::cancel(std::string_view queue, std::string_view id) {
    auto& im = *impl_;
    const auto& keys = im.keys_for(queue);
    auto reply = r::call(*im.rt, *im.topo, calls::cancel(keys, id, SystemClock::instance().now_ms())).value();
    if (!reply.is_array() || reply.size() < 1) {
        throw ProtoError("cancel: unexpected reply " + reply.debug_string());
    }
    auto what = std::string(reply[0].str());
    if (what == "unknown") {
        throw NotFound("no task '" + std::string(id) + "' in queue '" + std::string(queue) +
                       "' (never enqueued with state tracking, or finished longer ago than its retention)");
    }
    auto detail = reply.size() > 1 ? std::string(reply[1].str()) : std::string();
    CancelResult result = what == "delayed" ? CancelResult::delayed
                          : what == "ready" ? CancelResult::ready
                          : what == "active" ? CancelResult::active
                                             : CancelResult::finished;
    if ((result == CancelResult::delayed || result == CancelResult::ready) && !detail.empty()) {
        // Nobody else will tell the tracking client: no server has the task.
        Notification n{std::string(id), NotificationType::canceled, {}, {}, {}};
        auto f = encode(n);
        auto key = receiver_key(im.opts.prefix, detail);
        std::vector<std::string> argv{"XADD", key, "*"};
        for (auto v : f.views()) argv.emplace_back(v);
        if (auto sent = r::call(*im.rt, *im.topo, key, std::move(argv)); !sent) {
            log().warn("client {}: canceled task {} but could not notify its client {}: {}", im.id, id, detail,
                       sent.error().message());
        }
    }
    return result;
}

TaskInfo Client::get(std::string_view queue, std::string_view id) {
    auto& im = *impl_;
    const auto& keys = im.keys_for(queue);
    auto reply = r::call(*im.rt, *im.topo, calls::get(keys, id)).value();
    TaskInfo info;
    info.id = std::string(id);
    if (reply.is_nil()) return info;
    std::map<std::string, std::string, std::less<>> h;
    for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
        h[std::string(reply[i].str())] = std::string(reply[i + 1].str());
    }
    info.state = parse_state(h["state"]);
    if (h.count("active")) info.state = TaskState::active;
    info.retries = static_cast<std::uint32_t>(to_i64(h["retries"]));
    info.error = h["error"];
    info.created_ms = to_i64(h["created"]);
    info.updated_ms = to_i64(h["updated"]);
    info.finished_ms = to_i64(h["finished"]);
    // Finished records keep their last run_at (not cleared, to save Redis a
    // command per task): it means something only while the task waits.
    if (info.state == TaskState::delayed || info.state == TaskState::failed) info.run_at_ms = to_i64(h["run_at"]);
    return info;
}

bool Client::close(std::chrono::milliseconds deadline) {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.mutex);
        if (im.closed) return true;
        im.closed = true;
    }
    auto until = std::chrono::steady_clock::now() + deadline;
    bool flushed;
    {
        std::unique_lock lock(im.mutex);
        flushed = im.drained.wait_until(lock, until, [&] { return im.buffered == 0; });
    }
    if (!flushed) {
        log().warn("client {}: closing with {} task(s) not confirmed by Redis; they are not sent",
                   im.id, im.buffered);
    }
    // Remove our traces; bounded by what is left of the deadline.
    auto left = std::max<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()),
        500ms);
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    bool posted = im.rt->post([&im, done, left] {
        im.stopping = true;
        im.heartbeat->stop();
        im.resend_timer->stop();
        auto remaining = std::make_shared<int>(static_cast<int>(im.queues.size()) + 1);
        auto one = [done, remaining](Result<r::Reply>) {
            if (--*remaining == 0) done->set_value();
        };
        r::CommandOptions o{.timeout = left};
        im.topo->send(r::Route{im.receiver}, {"DEL", im.receiver}, one, o);
        for (const auto& [_, k] : im.queues) {
            im.topo->send(r::Route{k.clients()}, {"ZREM", k.clients(), im.id}, one, o);
        }
    });
    if (posted) fut.wait_for(left + 1s);
    std::unordered_map<std::string, std::shared_ptr<HandleState>> open;
    {
        std::lock_guard lock(im.mutex);
        open.swap(im.tracked);
    }
    for (auto& [_, h] : open) h->resolve(TaskOutcome{TaskStatus::canceled, "client closed"});
    im.rt->stop();
    return flushed;
}

}  // namespace v1
}  // namespace streamfleet
