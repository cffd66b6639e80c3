// Server: responsible for reading tasks (reader), running them on a pool of
// `concurrency` threads (dispatcher), and making each outcome durable before the
// entry is acknowledged (completion, retry, dead letter). It also promotes due
// retries from P{Q}:delayed and heartbeats into P{Q}:servers.
//
// Slots: the reader asks for at most as many entries as there are free handler
// slots, and reserves them while its read is outstanding, so the server never
// holds more tasks than it can run.
//
// Durability order per outcome (all commands of one outcome leave in one write):
//   success  : [notify completed] → XACK → XDEL
//   retry    : move { XADD P{Q} (retries+1) | ZADD P{Q}:delayed ; then XACK ; XDEL }
//   dead     : [notify error] → move { XADD P{Q}:dead ; then XACK ; XDEL }
//   expired  : [notify expired] → XACK → XDEL
//   malformed: move { XADD P{Q}:dead (raw fields + x_error) ; then XACK ; XDEL }
// where "move" is one Lua script (lib/scripts/move.lua) that acks only after the write
// succeeded.
// A crash between the steps can duplicate a notification or a run; it can
// never lose the task, because the entry stays in the PEL until its XACK.
//
// Shutdown order: stop reading (CLIENT UNBLOCK the reader, so a read already
// answered is not lost in a closed socket) → return unstarted tasks to their
// stream → let running handlers finish within the grace → fire cancel tokens and
// wait → wait for outcome writes → remove heartbeats → close connections → stop
// the loop → join the pool.

#include "streamfleet/server.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <random>
#include <future>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>
#include <unordered_map>

#include "core/backoff.hpp"
#include "core/clock.hpp"
#include "core/keys.hpp"
#include "core/script_calls.hpp"
#include "core/log.hpp"
#include "core/wire.hpp"
#include "redis/script_runner.hpp"
#include "redis/streams.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"
#include "runtime/handler_pool.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
using namespace std::chrono_literals;
namespace r = detail::redis;

// Points into the job that owns it (which outlives every handler call), so
// handing a task to its handler copies none of its strings.
struct TaskContext::Data {
    const TaskMessage* msg = nullptr;
    const std::string* queue = nullptr;
    std::uint64_t deliveries = 1;
    std::stop_token token;
};

const TaskId& TaskContext::id() const noexcept { return d_.msg->id; }
const std::string& TaskContext::queue() const noexcept { return *d_.queue; }
std::string_view TaskContext::data() const noexcept { return d_.msg->data; }
std::uint32_t TaskContext::retries() const noexcept { return d_.msg->retries; }
std::uint64_t TaskContext::deliveries() const noexcept { return d_.deliveries; }
std::stop_token TaskContext::cancel_token() const noexcept { return d_.token; }
std::optional<std::chrono::system_clock::time_point> TaskContext::deadline() const noexcept {
    if (d_.msg->expires_ts == 0) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(d_.msg->expires_ts));
}

namespace {


// A state change riding along in the move script when `msg` has a state
// record: `state` is 'failed', 'ready' or 'dead' (see lib/scripts/move.lua).
struct StateChange {
    const TaskMessage* msg = nullptr;
    std::string_view state{};
    std::string_view error{};
    std::uint32_t retries = 0;
};

// Set on handler-pool threads: shutdown() from a handler would wait for itself.
thread_local const void* t_handler_of = nullptr;

std::vector<std::string_view> entry_args(std::initializer_list<std::string_view> head,
                                         std::span<const std::string_view> fields) {
    std::vector<std::string_view> argv(head);
    argv.insert(argv.end(), fields.begin(), fields.end());
    return argv;
}

}  // namespace

struct Server::Impl {
    struct Queue {
        QueueKeys keys;
        OutcomeHandler handler;
        std::unique_ptr<Timer> promote_timer;
        std::int64_t promote_due = -1;  // unix ms the timer is set for, -1 = idle
        bool promoting = false;         // a promote script is in flight
        std::int64_t wanted_due = -1;   // earliest due heard of while promoting
        std::string nudge_id = "0-0";   // last P{Q}:nudge entry seen
        std::string cancel_id;          // last P{Q}:cancels entry seen
        std::vector<std::string> acks;  // entry ids to ack at the end of this turn
        std::optional<calls::FinishBatch> states;  // final states of those tasks
    };

    struct Job {
        Queue* queue = nullptr;
        std::string entry_id;
        // The raw fields view into the reply they came in, which the job keeps
        // alive: no copy per field, and a malformed entry's dead letter still
        // has every byte as it was read.
        std::shared_ptr<const r::Reply> source;
        std::vector<RawField> raw;
        TaskMessage msg;
        TaskContext::Data ctx;
        std::stop_source stop;
        std::optional<Outcome> outcome;
        bool interrupted = false;  // canceled by shutdown
        bool timed_out = false;    // ran past the task's x_timeout
        bool canceled = false;     // Client::cancel() asked for it while it ran
        std::unique_ptr<Timer> run_timer;  // loop thread; set when x_timeout is
    };

    // An outcome write, kept (and resent) until Redis has it: a plain
    // command (route + argv) or a script call.
    struct Durable {
        std::string route;
        std::vector<std::string> argv;
        std::string what;
        std::optional<ScriptCall> script{};
    };

    ServerOptions opts;
    std::map<std::string, Queue, std::less<>> queues;
    std::vector<Queue*> order;  // round-robin order for reads
    std::size_t rr = 0;

    // Loop-thread state.
    std::unique_ptr<r::Topology> topo;
    std::shared_ptr<r::Connection> reader;
    long long reader_client_id = -1;
    unsigned free_slots = 0;
    bool reading = false;
    bool stopping = false;
    std::unordered_map<Job*, std::shared_ptr<Job>> running;  // dispatched, not finished
    std::unique_ptr<Timer> heartbeat;
    std::unique_ptr<Timer> read_retry;
    // Promoter wake-ups: one blocking XREAD over every queue's P{Q}:nudge.
    std::shared_ptr<r::Connection> nudger;
    std::unique_ptr<Timer> nudge_retry;
    // Read batching under a backlog: see read_next().
    std::unique_ptr<Timer> read_gather;
    bool backlog = false;  // the last read filled every slot it asked for
    std::unique_ptr<TurnEnd> ack_flush;
    std::vector<Queue*> queues_to_ack;
    std::size_t acks_unflushed = 0;
    std::unique_ptr<Timer> lease_timer;
    std::unique_ptr<Timer> write_retry;
    std::unique_ptr<Timer> janitor_timer;
    std::deque<std::shared_ptr<Durable>> retry_writes;
    std::unique_ptr<Timer> reclaim_timer;
    std::deque<std::function<void()>> claims_waiting;  // claims that need a free slot
    std::size_t writes_outstanding = 0;

    // Pool: accepted jobs of one read go to it in one push; finished ones come
    // back through `done`, which wakes the loop once per batch, not per job.
    HandlerPool<std::shared_ptr<Job>> pool;
    std::vector<std::shared_ptr<Job>> to_run;  // loop thread: accepted, not pushed yet
    std::mutex done_mutex;
    std::vector<std::shared_ptr<Job>> done;    // guarded by done_mutex
    std::vector<std::shared_ptr<Job>> done_batch;  // loop thread: being finished

    // Progress seen by shutdown()/run() on other threads.
    std::mutex state_mutex;
    std::condition_variable state_cv;
    std::size_t in_flight = 0;        // mirrors running.size()
    std::size_t writes_pending = 0;   // mirrors writes_outstanding
    bool read_pending = false;        // mirrors reading
    bool started = false, shut_down = false, shutting_down = false;

    struct Counters {
        std::atomic<std::uint64_t> succeeded{0}, failed{0}, retried{0}, dead{0}, expired{0},
            malformed{0}, returned{0}, canceled{0};
    } counters;

    // Declared last: destroyed first, joining the loop before the state above goes.
    std::unique_ptr<Runtime> rt;

    // ---- bookkeeping shared with other threads ----

    void publish() {
        std::lock_guard lock(state_mutex);
        in_flight = running.size();
        writes_pending = writes_outstanding + acks_unflushed;
        read_pending = reading;
        state_cv.notify_all();
    }

    // Sends one command counted as an outcome write; shutdown waits for these.
    // An outcome write, kept until Redis has it. While Redis is unreachable
    // the outcome waits here (and is retried every 250 ms) instead of being
    // dropped: a finished task whose ack was merely delayed must not run again.
    void durable(std::shared_ptr<Durable> d) {
        std::vector<std::string_view> argv(d->argv.begin(), d->argv.end());
        auto done = [this, d](Result<r::Reply> res) {
            if (!res.ok()) {
                const auto& e = res.error();
                if (e.is_transient()) {
                    retry_writes.push_back(d);
                    if (retry_writes.size() == 1) {
                        log().warn("server {}: Redis unreachable; keeping outcomes until it returns: {}",
                                   opts.id, e.message());
                    }
                    if (write_retry && !write_retry->active()) {
                        write_retry->start(250, [this] { flush_write_retries(); });
                    }
                    return;  // still outstanding
                }
                // Redis refused it (WRONGTYPE, OOM, ...): the entry stays pending
                // and will be delivered again; it is not lost.
                log().error("server {}: {} failed: {}", opts.id, d->what, e.message());
            }
            --writes_outstanding;
            publish();
        };
        if (!d->script) topo->send(r::Route{d->route}, argv, std::move(done));
        else r::run_script(*topo, *d->script, std::move(done));
    }

    void flush_write_retries() {
        auto batch = std::move(retry_writes);
        retry_writes.clear();
        for (auto& d : batch) durable(d);
    }

    void write(const r::Route& route, std::span<const std::string_view> argv, std::string what) {
        ++writes_outstanding;
        durable(std::make_shared<Durable>(
            Durable{std::string(route.key), {argv.begin(), argv.end()}, std::move(what)}));
    }

    static std::int64_t retention_of(const TaskMessage& m) {
        return m.retention_ms >= 0 ? m.retention_ms : kDefaultRetentionMs;
    }

    // Writes the task to `dest` (XADD fields, or ZADD score member), then acks
    // and deletes the entry, atomically and in that order (lib/scripts/move.lua).
    void move_entry(const Job& job, const std::string& dest, std::string_view mode,
                    std::span<const std::string_view> payload, std::string what, StateChange sc = {}) {
        const auto& k = job.queue->keys;
        bool tracked = sc.msg && sc.msg->state && !sc.state.empty();
        calls::Move m{.dest = dest,
                      .to = mode == "zadd" ? calls::Move::To::delayed : calls::Move::To::stream,
                      .entry_id = job.entry_id,
                      .payload = payload,
                      .task_id = tracked ? std::string_view(sc.msg->id) : std::string_view(),
                      .state = tracked ? sc.state : std::string_view(),
                      .now_ms = SystemClock::instance().now_ms(),
                      .error = sc.error,
                      .retries = sc.retries,
                      .retention_ms = tracked ? retention_of(*sc.msg) : 0};
        ++writes_outstanding;
        durable(std::make_shared<Durable>(Durable{k.stream(), {}, std::move(what), calls::move(k, m)}));
    }

    // ---- start ----

    void start_on_loop() {
        r::ConnectionOptions co{.command_timeout = opts.command_timeout,
                                .client_name = "streamfleet-server:" + opts.id};
        topo = r::make_topology(*rt, r::parse_url(opts.redis).value(), co).value();
        // Registered before any other handle exists, so whatever follows is
        // closed on the loop when the runtime stops, even after a failure.
        rt->add_stop_hook([this] {
            stopping = true;
            heartbeat.reset();
            read_retry.reset();
            read_gather.reset();
            ack_flush.reset();
            lease_timer.reset();
            write_retry.reset();
            janitor_timer.reset();
            reclaim_timer.reset();
            claims_waiting.clear();
            for (auto& [_, q] : queues) q.promote_timer.reset();
            if (reader) reader->close();
            nudge_retry.reset();
            if (nudger) nudger->close();
            for (auto& [_, job] : running) job->run_timer.reset();
            if (topo) topo->close();
        });
        topo->start();
        heartbeat = std::make_unique<Timer>(rt->loop());
        read_retry = std::make_unique<Timer>(rt->loop());
        read_gather = std::make_unique<Timer>(rt->loop());
        ack_flush = std::make_unique<TurnEnd>(rt->loop(), [this] { flush_acks(); });
        lease_timer = std::make_unique<Timer>(rt->loop());
        write_retry = std::make_unique<Timer>(rt->loop());
        janitor_timer = std::make_unique<Timer>(rt->loop());
        reclaim_timer = std::make_unique<Timer>(rt->loop());
        for (auto& [_, q] : queues) q.promote_timer = std::make_unique<Timer>(rt->loop());
        nudge_retry = std::make_unique<Timer>(rt->loop());
        free_slots = opts.concurrency;
        reader = topo->dedicated(r::Route{order.front()->keys.stream()}, "reader");
        reader->send({"CLIENT", "ID"}, [this](Result<r::Reply> res) {
            if (res.ok()) reader_client_id = res->as_integer().value_or(-1);
        });
        // A restarted server with the same id first takes back what its
        // previous life left pending, and only then reads new work: a read
        // racing this claim would make fresh deliveries look stale.
        create_groups([this] { recover_own(0); });
        beat();
        keep_leases();
        schedule_reclaim();
        sweep_orphans();
        for (auto* q : order) promote(*q);
        // In a cluster the queues' nudge streams may live on different nodes;
        // one connection per node would be needed there (Cluster is a later
        // issue). Standalone and Sentinel: one connection serves all.
        nudger = topo->dedicated(r::Route{order.front()->keys.nudge()}, "nudges");
        // Cancels from a few seconds back are replayed: harmless (they name
        // tasks to stop), and no request falls between start and first read.
        auto since = std::to_string(std::max<std::int64_t>(SystemClock::instance().now_ms() - 5000, 0));
        for (auto* q : order) q->cancel_id = since;
        listen_nudges();
    }

    // Blocks on every queue's nudge stream (plain XREAD: every server sees
    // every nudge). Starting from 0-0 replays the last ~100 nudges once, which
    // only re-arms timers; the promote script decides what is really due.
    void listen_nudges() {
        if (stopping) return;
        auto block_s = std::to_string(opts.read_block.count());
        std::vector<std::string_view> argv{"XREAD", "COUNT", "128", "BLOCK", block_s, "STREAMS"};
        for (auto* q : order) argv.push_back(q->keys.nudge());
        for (auto* q : order) argv.push_back(q->keys.cancels());
        for (auto* q : order) argv.push_back(q->nudge_id);
        for (auto* q : order) argv.push_back(q->cancel_id);
        nudger->send(
            argv,
            [this](Result<r::Reply> res) {
                if (stopping) return;
                if (!res.ok()) {
                    if (res.error().is(errc::closed)) return;
                    log().debug("server {}: nudge read failed: {}", opts.id, res.error().message());
                    nudge_retry->start(200, [this] { listen_nudges(); });
                    return;
                }
                r::for_each_entry(*res, [this](std::string_view stream, const r::StreamEntry& e) {
                    for (auto* q : order) {
                        if (q->keys.cancels() == stream) {
                            q->cancel_id = std::string(e.id);
                            for (const auto& [f, v] : e.fields) {
                                if (f == "id") cancel_running_task(*q, v);
                            }
                        }
                        if (q->keys.nudge() != stream) continue;
                        q->nudge_id = std::string(e.id);
                        for (const auto& [f, v] : e.fields) {
                            std::int64_t due = 0;
                            auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), due);
                            if (f == "due" && ec == std::errc() && p == v.data() + v.size()) {
                                want_promotion(*q, due);
                            }
                        }
                    }
                });
                listen_nudges();
            },
            r::CommandOptions{.timeout = 0ms, .block = opts.read_block});
    }

    template <class Then>
    void create_groups(Then then) {
        auto left = std::make_shared<std::size_t>(queues.size());
        for (auto& [_, q] : queues) {
            // Id 0: tasks enqueued before any server existed are processed too.
            r::ensure_group(*topo, q.keys.stream(), kServerGroup, "0", [this, left, then](Status st) {
                if (!st) log().warn("server {}: creating group failed: {}", opts.id, st.error().message());
                if (--*left == 0 && !stopping) then();
            });
        }
    }

    void beat() {
        auto now = std::to_string(SystemClock::instance().now_ms());
        for (auto* q : order) {
            topo->send(r::Route{q->keys.servers()}, {"ZADD", q->keys.servers(), now, opts.id},
                       [](Result<r::Reply>) {});
        }
        heartbeat->start(static_cast<std::uint64_t>(opts.heartbeat_interval.count()),
                         [this] { beat(); });
        find_dead_servers();
    }

    // ---- recovery: lease keeper, dead servers, reclaimer ----

    // Responsible for keeping this server's in-flight entries from looking
    // idle: every lease/3 they are re-claimed by their owner (JUSTID: the
    // delivery count stays), so no peer takes over a long task on a live server.
    void keep_leases() {
        if (stopping) return;
        std::map<Queue*, std::vector<std::string>> ids;
        for (const auto& [_, job] : running) ids[job->queue].push_back(job->entry_id);
        for (auto& [q, list] : ids) {
            auto asked = list.size();
            r::run_script(*topo, calls::keep(q->keys, opts.id, list),
                       [this, asked](Result<r::Reply> res) {
                           if (!res.ok()) {
                               log().warn("server {}: keeping leases failed: {}", opts.id,
                                          res.error().message());
                           } else if (res->size() < asked) {
                               log().warn("server {}: {} running task(s) were taken over by a peer "
                                          "(lease lapsed); they may run twice",
                                          opts.id, asked - res->size());
                           }
                       });
        }
        lease_timer->start(static_cast<std::uint64_t>(std::max<long long>(opts.lease.count() / 3, 1)),
                           [this] { keep_leases(); });
    }

    // Servers whose heartbeat is older than dead_after: take their pending
    // entries now instead of waiting for the lease to lapse.
    void find_dead_servers() {
        auto cutoff = std::to_string(SystemClock::instance().now_ms() - opts.dead_after.count());
        for (auto* q : order) {
            topo->send(r::Route{q->keys.servers()},
                       {"ZRANGEBYSCORE", q->keys.servers(), "-inf", "(" + cutoff},
                       [this, q](Result<r::Reply> res) {
                           if (stopping || !res.ok() || !res->is_array()) return;
                           for (const auto& dead : res->elements()) {
                               auto id = dead.as_string();
                               if (!id || *id == opts.id) continue;
                               claim(*q, std::string(*id), 0);
                           }
                       });
        }
    }

    void recover_own(std::size_t i) {
        if (i == order.size()) {
            read_next();
            return;
        }
        claim(*order[i], opts.id, 0, [this, i] { recover_own(i + 1); });
    }

    // Janitor: clients silent for longer than orphan_timeout lose their
    // notification stream (its group goes with it) and their heartbeat entry.
    void sweep_orphans() {
        if (stopping) return;
        auto cutoff = std::to_string(SystemClock::instance().now_ms() - opts.orphan_timeout.count());
        for (auto* q : order) {
            topo->send(r::Route{q->keys.clients()}, {"ZRANGEBYSCORE", q->keys.clients(), "-inf", "(" + cutoff},
                       [this, q](Result<r::Reply> res) {
                           if (stopping || !res.ok() || !res->is_array()) return;
                           for (const auto& c : res->elements()) {
                               auto id = c.as_string();
                               if (!id) continue;
                               auto key = receiver_key(opts.prefix, *id);
                               log().info("server {}: removing orphaned client {}", opts.id, *id);
                               topo->send(r::Route{key}, {"DEL", key}, [](Result<r::Reply>) {});
                               topo->send(r::Route{q->keys.clients()}, {"ZREM", q->keys.clients(), *id},
                                          [](Result<r::Reply>) {});
                           }
                       });
        }
        trim_dead_letters();
        auto every = std::clamp<long long>(opts.orphan_timeout.count() / 2, 100, 60'000);
        janitor_timer->start(static_cast<std::uint64_t>(every), [this] { sweep_orphans(); });
    }

    // Dead-letter retention, by count and by age (the entry id is the time it
    // died). Approximate trims (~) drop whole stream nodes, which is cheap; the
    // bounds hold to within one node (100 entries).
    void trim_dead_letters() {
        for (auto* q : order) {
            const auto& dead = q->keys.dead();
            if (opts.dead_max > 0) {
                topo->send(r::Route{dead}, {"XTRIM", dead, "MAXLEN", "~", std::to_string(opts.dead_max)},
                           [](Result<r::Reply>) {});
            }
            if (opts.dead_max_age.count() > 0) {
                auto cutoff = SystemClock::instance().now_ms() - opts.dead_max_age.count();
                if (cutoff > 0) {
                    topo->send(r::Route{dead}, {"XTRIM", dead, "MINID", "~", std::to_string(cutoff)},
                               [](Result<r::Reply>) {});
                }
            }
        }
    }

    // Safety net: any entry idle longer than the lease, whoever owns it.
    void schedule_reclaim() {
        if (stopping) return;
        thread_local std::minstd_rand rng(std::random_device{}());
        auto half = std::max<long long>(opts.lease.count() / 2, 1);
        auto delay = half - half / 4 + static_cast<long long>(rng() % static_cast<unsigned long>(half / 2 + 1));
        reclaim_timer->start(static_cast<std::uint64_t>(delay), [this] {
            for (auto* q : order) claim(*q, std::nullopt, opts.lease.count());
            schedule_reclaim();
        });
    }

    // Claims up to `free slots` pending entries of `q` idle for at least
    // `min_idle_ms` (owned by `consumer`, if given), and runs them here.
    // Step 1 (XPENDING) learns ids and delivery counts without taking anything;
    // step 2 (XCLAIM with the same min-idle) takes only those still idle, so
    // two servers racing for one entry cannot both win.
    void claim(Queue& q, std::optional<std::string> consumer, long long min_idle_ms,
               std::function<void()> then = {}) {
        if (stopping) return;
        auto idle = std::to_string(min_idle_ms);
        auto count = std::to_string(std::max(opts.concurrency, 1u));
        std::vector<std::string_view> argv{"XPENDING", q.keys.stream(), kServerGroup, "IDLE", idle,
                                           "-",        "+",             count};
        if (consumer) argv.push_back(*consumer);
        topo->send(r::Route{q.keys.stream()}, argv,
                   [this, &q, consumer, min_idle_ms, then](Result<r::Reply> res) {
                       if (stopping) return;
                       if (!res.ok() || !res->is_array() || res->size() == 0) {
                           if (consumer && res.ok() && res->is_array() && res->size() == 0 &&
                               *consumer != opts.id) {
                               forget_server(q, *consumer);
                           }
                           if (then) then();
                           return;
                       }
                       std::vector<std::pair<std::string, std::uint64_t>> candidates;
                       for (const auto& p : res->elements()) {
                           if (!p.is_array() || p.size() < 4) continue;
                           auto id = p[0].as_string();
                           auto n = p[3].as_integer();
                           if (!id || !n) continue;
                           bool ours_running = false;
                           for (const auto& [_, job] : running) {
                               if (job->queue == &q && job->entry_id == *id) ours_running = true;
                           }
                           if (!ours_running) candidates.emplace_back(std::string(*id), static_cast<std::uint64_t>(*n));
                       }
                       if (candidates.empty()) {
                           if (then) then();
                           return;
                       }
                       auto go = [this, &q, candidates, min_idle_ms, then] {
                           take(q, candidates, min_idle_ms, then);
                       };
                       if (free_slots > 0) {
                           go();
                       } else {
                           claims_waiting.push_back(go);
                           unblock_reader();
                       }
                   });
    }

    void take(Queue& q, std::vector<std::pair<std::string, std::uint64_t>> candidates,
              long long min_idle_ms, std::function<void()> then) {
        if (stopping) return;
        if (free_slots == 0) {
            claims_waiting.push_back([this, &q, candidates, min_idle_ms, then] {
                take(q, candidates, min_idle_ms, then);
            });
            return;
        }
        auto n = std::min<std::size_t>(candidates.size(), free_slots);
        candidates.resize(n);
        free_slots -= static_cast<unsigned>(n);
        auto idle = std::to_string(min_idle_ms);
        std::vector<std::string_view> argv{"XCLAIM", q.keys.stream(), kServerGroup, opts.id, idle};
        for (const auto& [id, _] : candidates) argv.push_back(id);
        topo->send(r::Route{q.keys.stream()}, argv,
                   [this, &q, candidates, n, then](Result<r::Reply> res) {
                       unsigned dispatched = 0;
                       if (res.ok() && res->is_array()) {
                           auto source = std::make_shared<const r::Reply>(std::move(*res));
                           for (const auto& e : source->elements()) {
                               auto entry = r::parse_entry(e);
                               if (!entry) continue;  // deleted meanwhile
                               std::uint64_t before = 0;
                               for (const auto& [id, count] : candidates) {
                                   if (id == entry->id) before = count;
                               }
                               if (accept(q, source, *entry, before + 1)) ++dispatched;
                           }
                           pool.push(to_run);
                           if (dispatched > 0) {
                               log().info("server {}: took over {} task(s) in {}", opts.id, dispatched,
                                          q.keys.stream());
                           }
                       } else if (!res.ok()) {
                           log().warn("server {}: claiming failed: {}", opts.id, res.error().message());
                       }
                       free_slots += static_cast<unsigned>(n) - dispatched;
                       publish();
                       if (then) then();
                       else read_next();
                   });
    }

    // A dead server that owns nothing more leaves the group and the registry.
    void forget_server(Queue& q, const std::string& id) {
        topo->send(r::Route{q.keys.stream()}, {"XGROUP", "DELCONSUMER", q.keys.stream(), kServerGroup, id},
                   [](Result<r::Reply>) {});
        topo->send(r::Route{q.keys.servers()}, {"ZREM", q.keys.servers(), id}, [](Result<r::Reply>) {});
    }

    void unblock_reader() {
        if (reading && reader_client_id >= 0) {
            auto id = std::to_string(reader_client_id);
            // The reader's node: the one holding the stream it was opened for.
            topo->send(r::Route{order.front()->keys.stream()}, {"CLIENT", "UNBLOCK", id},
                       [](Result<r::Reply>) {});
        }
    }

    // ---- reader ----

    // While the stream has a backlog, a read for the one slot that just freed
    // costs a round trip and a Redis call for a single task. So with a backlog
    // the reader waits until half the slots are free -- or kGather has passed,
    // so slow handlers never leave slots idle for long. Without a backlog it
    // reads at once (the read blocks anyway, and latency is what counts).
    static constexpr std::uint64_t kGatherMs = 1;

    void read_next(bool gathered = false) {
        if (stopping || reading || free_slots == 0) return;
        if (backlog && !gathered && free_slots < std::max(1u, opts.concurrency / 2)) {
            if (!read_gather->active()) read_gather->start(kGatherMs, [this] { read_next(true); });
            return;
        }
        read_gather->stop();
        if (!claims_waiting.empty()) {
            // Recovery of others' tasks goes before new work; each claim calls
            // read_next() again when it is done.
            auto next = std::move(claims_waiting.front());
            claims_waiting.pop_front();
            next();
            return;
        }
        std::size_t n = order.size();
        std::size_t k = std::min<std::size_t>(n, free_slots);
        unsigned count = free_slots / static_cast<unsigned>(k);
        std::vector<Queue*> picked;
        for (std::size_t i = 0; i < k; ++i) picked.push_back(order[(rr + i) % n]);
        rr = (rr + k) % n;
        unsigned reserved = count * static_cast<unsigned>(k);
        free_slots -= reserved;
        reading = true;

        auto count_s = std::to_string(count);
        auto block_s = std::to_string(opts.read_block.count());
        std::vector<std::string_view> argv{"XREADGROUP", "GROUP", kServerGroup, opts.id, "COUNT",
                                           count_s,      "BLOCK", block_s,      "STREAMS"};
        for (auto* q : picked) argv.push_back(q->keys.stream());
        for (std::size_t i = 0; i < k; ++i) argv.push_back(">");
        reader->send(argv,
                     [this, reserved](Result<r::Reply> res) { on_read(std::move(res), reserved); },
                     r::CommandOptions{.timeout = 0ms, .block = opts.read_block});
    }

    void on_read(Result<r::Reply> res, unsigned reserved) {
        reading = false;
        unsigned used = 0;
        if (!res.ok()) {
            free_slots += reserved;
            publish();
            const auto& e = res.error();
            if (e.is(errc::closed)) return;
            if (e.is(errc::reply_error) && e.message().starts_with("NOGROUP")) {
                create_groups([this] { read_next(); });
                return;
            }
            log().warn("server {}: read failed: {}", opts.id, e.message());
            if (!stopping) read_retry->start(200, [this] { read_next(); });
            return;
        }
        auto source = std::make_shared<const r::Reply>(std::move(*res));
        r::for_each_entry(*source, [&](std::string_view stream, const r::StreamEntry& e) {
            ++used;
            Queue* q = queue_by_stream(stream);
            if (!q || !accept(*q, source, e)) ++free_slots;  // not run: its slot is free again
        });
        pool.push(to_run);
        free_slots += reserved - std::min(used, reserved);
        backlog = used >= reserved && reserved > 0;
        publish();
        read_next();
    }

    Queue* queue_by_stream(std::string_view stream) {
        for (auto* q : order) {
            if (q->keys.stream() == stream) return q;
        }
        return nullptr;
    }

    // Takes one read entry; returns true if it was dispatched to a handler.
    bool accept(Queue& q, const std::shared_ptr<const r::Reply>& source, const r::StreamEntry& entry,
                std::uint64_t deliveries = 1) {
        auto job = std::make_shared<Job>();
        job->queue = &q;
        job->entry_id = std::string(entry.id);
        job->source = source;
        job->raw = entry.fields;
        const auto& fields = job->raw;

        if (deliveries > opts.max_deliveries) {
            // A task that keeps killing (or hanging) its servers: stop the cycle.
            poison(*job, deliveries);
            return false;
        }
        auto decoded = decode_task(fields);
        if (!decoded.ok()) {
            malformed(*job, decoded.error().message());
            return false;
        }
        job->msg = std::move(*decoded);
        if (stopping) {
            return_to_stream(*job);
            return false;
        }
        auto now = SystemClock::instance().now_ms();
        if (job->msg.expires_ts != 0 && now > job->msg.expires_ts) {
            expired(*job);
            return false;
        }
        job->ctx.msg = &job->msg;
        job->ctx.queue = &q.keys.queue();
        job->ctx.deliveries = deliveries;
        job->ctx.token = job->stop.get_token();
        if (job->msg.timeout_ms > 0) {
            job->run_timer = std::make_unique<Timer>(rt->loop());
            job->run_timer->start(static_cast<std::uint64_t>(job->msg.timeout_ms), [j = job.get()] {
                // Still running (finish() closes this timer): cancel the run,
                // which then counts as a failure whatever the handler returns.
                j->timed_out = true;
                j->stop.request_stop();
            });
        }
        running.emplace(job.get(), job);
        to_run.push_back(std::move(job));  // pushed by the caller, with its batch
        return true;
    }

    // ---- outcomes (loop thread) ----

    void notify(const Job& job, NotificationType type, std::string_view err) {
        if (!job.msg.send_notif) return;
        Notification n{job.msg.id, type, std::string(err), {}, opts.id};
        auto f = encode(n);
        auto key = receiver_key(opts.prefix, job.msg.client_id);
        write(r::Route{key}, entry_args({"XADD", key, "*"}, f.views()), "notification");
    }

    // Acks are batched per queue and loop turn: every task finished in this
    // turn is acked by one XACK and deleted by one XDEL with all their ids,
    // written after the turn's notifications (same connection, so in order).
    // `state`: the final state to record ('completed', 'expired', 'canceled')
    // for a task with a state record; written by lib/scripts/finish.lua before the ack.
    void ack_and_delete(const Job& job, std::string_view state = {}, std::string_view error = {}) {
        auto& q = *job.queue;
        if (q.acks.empty()) queues_to_ack.push_back(&q);
        q.acks.push_back(job.entry_id);
        if (!state.empty() && job.msg.state) {
            if (!q.states) q.states.emplace(q.keys);
            q.states->add(job.msg.id, state, error, job.msg.retries, retention_of(job.msg));
        }
        ++acks_unflushed;  // counts as a pending write until flushed: shutdown waits for it
        ack_flush->arm();
    }

    void flush_acks() {
        auto batch = std::move(queues_to_ack);
        queues_to_ack.clear();
        for (auto* q : batch) {
            const auto& s = q->keys.stream();
            if (q->states && !q->states->empty()) {
                ++writes_outstanding;
                durable(std::make_shared<Durable>(Durable{
                    s, {}, "task states", q->states->take(SystemClock::instance().now_ms())}));
            }
            std::vector<std::string_view> ack{"XACK", s, kServerGroup};
            std::vector<std::string_view> del{"XDEL", s};
            for (const auto& id : q->acks) {
                ack.push_back(id);
                del.push_back(id);
            }
            write(r::Route{s}, ack, "XACK");
            write(r::Route{s}, del, "XDEL");
            q->acks.clear();
        }
        acks_unflushed = 0;
        publish();
    }

    // Dead-letters an entry as it was read (raw fields, whatever they hold)
    // with `why` as its x_error.
    void dead_letter_raw(const Job& job, const std::string& why, std::string what,
                         const TaskMessage* msg = nullptr) {
        log().warn("server {}: entry {} in {} dead-lettered: {}", opts.id, job.entry_id,
                   job.queue->keys.stream(), why);
        std::vector<std::string_view> fields;
        for (const auto& [f, v] : job.raw) {
            if (f == "x_error") continue;
            fields.push_back(f);
            fields.push_back(v);
        }
        fields.push_back("x_error");
        fields.push_back(why);
        move_entry(job, job.queue->keys.dead(), "xadd", fields, std::move(what),
                   StateChange{msg, "dead", why, msg ? msg->retries : 0});
    }

    void malformed(const Job& job, const std::string& reason) {
        ++counters.malformed;
        dead_letter_raw(job, "malformed entry: " + reason, "dead-letter malformed " + job.entry_id);
    }

    void poison(const Job& job, std::uint64_t deliveries) {
        ++counters.dead;
        auto why = "exceeded " + std::to_string(opts.max_deliveries) + " deliveries (" +
                   std::to_string(deliveries) + ")";
        // A tracked task's client hears of it; the fields may be garbage, so only when they decode.
        auto m = decode_task(job.raw);
        if (m.ok() && m->send_notif) {
            Job tmp;
            tmp.msg = *m;
            notify(tmp, NotificationType::error, why);
        }
        dead_letter_raw(job, why, "dead-letter poison " + job.entry_id, m.ok() ? &*m : nullptr);
    }

    void expired(const Job& job) {
        ++counters.expired;
        notify(job, NotificationType::expired, {});
        ack_and_delete(job, "expired");
    }

    void return_to_stream(const Job& job) {
        ++counters.returned;
        std::vector<std::string_view> fields;
        for (const auto& [f, v] : job.raw) {
            fields.push_back(f);
            fields.push_back(v);
        }
        move_entry(job, job.queue->keys.stream(), "xadd", fields, "return " + job.entry_id,
                   StateChange{&job.msg, "ready", job.msg.error, job.msg.retries});
    }

    void finish(const std::shared_ptr<Job>& job) {
        running.erase(job.get());
        ++free_slots;
        job->run_timer.reset();
        if (job->canceled && !job->interrupted) {
            // Canceled while it ran: whatever the handler returned, the
            // caller of cancel() was told the run would stop.
            ++counters.canceled;
            notify(*job, NotificationType::canceled, {});
            ack_and_delete(*job, "canceled");
            publish();
            return;
        }
        if (job->timed_out && !job->interrupted) {
            job->outcome = Outcome::failure("run timed out after " + std::to_string(job->msg.timeout_ms) +
                                            " ms");
        }
        const Outcome& out = *job->outcome;
        const auto& k = job->queue->keys;
        if (out.kind() == Outcome::Kind::success) {
            ++counters.succeeded;
            notify(*job, NotificationType::completed, {});
            ack_and_delete(*job, "completed");
        } else if (job->interrupted) {
            // Shutdown cut the run short: not the task's fault, so it goes
            // back as it was, without spending a retry.
            return_to_stream(*job);
        } else {
            ++counters.failed;
            const auto& m = job->msg;
            bool retries_left = m.max_retries == 0 || m.retries < m.max_retries;
            if (out.kind() == Outcome::Kind::failure && retries_left) {
                retry(*job, out.error());
            } else {
                ++counters.dead;
                notify(*job, NotificationType::error, out.error());
                TaskMessage d = m;
                d.error = out.error();
                d.history = history_add(m.history, SystemClock::instance().now_ms(), out.error());
                auto f = encode(d);
                move_entry(*job, k.dead(), "xadd", f.views(), "dead-letter " + m.id,
                           StateChange{&m, "dead", out.error(), m.retries});
            }
        }
        publish();
    }

    // The retry is made durable in the same script that acks the original:
    // there is no instant at which the task exists nowhere.
    void retry(Job& job, const std::string& error) {
        ++counters.retried;
        auto& q = *job.queue;
        const auto& k = q.keys;
        TaskMessage next = job.msg;
        next.retries += 1;
        next.error = error;
        next.history = history_add(job.msg.history, SystemClock::instance().now_ms(), error);
        thread_local std::mt19937_64 rng(std::random_device{}());
        auto delay = retry_delay_ms(job.msg.backoff, job.msg.retry_delay_ms, job.msg.backoff_max_ms,
                                    job.msg.retries, rng());
        auto due = SystemClock::instance().now_ms() + delay;
        next.run_at_ms = delay > 0 ? due : 0;
        auto f = encode(next);
        if (delay <= 0) {
            move_entry(job, k.stream(), "xadd", f.views(), "retry " + next.id,
                       StateChange{&next, "ready", error, next.retries});
            return;
        }
        std::vector<std::string> parts(f.views().begin(), f.views().end());
        std::string member = encode_msgpack(parts);
        auto due_s = std::to_string(due);
        std::string_view zadd[] = {due_s, member};
        move_entry(job, k.delayed(), "zadd", zadd, "delayed retry " + next.id,
                   StateChange{&next, "failed", error, next.retries});
        want_promotion(q, due);
    }

    // ---- promoter ----

    void cancel_running_task(Queue& q, std::string_view id) {
        for (auto& [_, job] : running) {
            if (job->queue == &q && job->msg.id == id && !job->canceled) {
                log().info("server {}: canceling running task {}", opts.id, id);
                job->canceled = true;
                job->stop.request_stop();
            }
        }
    }

    // Something in the delayed set is due at `due`: make sure the timer fires
    // by then. While a promote script runs, its reply re-arms the timer for the
    // head it saw, which may be later than this; so remember it for then.
    void want_promotion(Queue& q, std::int64_t due) {
        if (q.promoting) {
            q.wanted_due = q.wanted_due < 0 ? due : std::min(q.wanted_due, due);
            return;
        }
        if (q.promote_due < 0 || due < q.promote_due) arm_promoter(q, due);
    }

    void arm_promoter(Queue& q, std::int64_t due) {
        if (stopping || !q.promote_timer) return;
        auto now = SystemClock::instance().now_ms();
        // Re-check at least every second even when nothing is known to be due:
        // other servers and clients may schedule retries this server has not seen.
        auto wait = std::clamp<std::int64_t>(due - now, 0, 1000);
        q.promote_due = now + wait;
        q.promote_timer->start(static_cast<std::uint64_t>(wait), [this, &q] { promote(q); });
    }

    void promote(Queue& q) {
        q.promote_due = -1;
        if (stopping) return;
        q.promoting = true;
        r::run_script(*topo, calls::promote(q.keys, SystemClock::instance().now_ms(), 256),
                   [this, &q](Result<r::Reply> res) {
                       if (stopping) return;
                       std::int64_t next = -1;
                       long long moved = 0;
                       if (res.ok() && res->is_array() && res->size() == 2) {
                           moved = (*res)[0].as_integer().value_or(0);
                           next = (*res)[1].as_integer().value_or(-1);
                       } else if (!res.ok()) {
                           log().warn("server {}: promoting delayed tasks failed: {}", opts.id,
                                      res.error().message());
                       }
                       if (moved == 256) {
                           promote(q);  // more are due right now
                           return;
                       }
                       q.promoting = false;
                       if (next < 0) next = SystemClock::instance().now_ms() + 1000;
                       if (q.wanted_due >= 0) next = std::min(next, q.wanted_due);
                       q.wanted_due = -1;
                       arm_promoter(q, next);
                   });
    }

    // ---- pool ----

    void run_job(std::shared_ptr<Job>& job) {
        t_handler_of = this;
        TaskContext ctx(job->ctx);
        try {
            job->outcome = job->queue->handler(ctx);
        } catch (const std::exception& e) {
            job->outcome = Outcome::failure(e.what());
        } catch (...) {
            job->outcome = Outcome::failure("handler threw a non-standard exception");
        }
        bool first;
        {
            std::lock_guard lock(done_mutex);
            first = done.empty();
            done.push_back(std::move(job));
        }
        // Only the first finisher of a batch wakes the loop; the drain takes
        // every job that finished until it runs.
        if (first && !rt->post([this] { finish_done(); })) {
            log().error("server {}: a task finished after the loop stopped; it stays pending", opts.id);
        }
    }

    void finish_done() {
        {
            std::lock_guard lock(done_mutex);
            done_batch.swap(done);
        }
        for (auto& job : done_batch) finish(job);
        done_batch.clear();
        read_next();
    }

    // ---- shutdown ----

    void begin_stop() {
        stopping = true;
        if (heartbeat) heartbeat->stop();
        for (auto& [_, q] : queues) {
            if (q.promote_timer) q.promote_timer->stop();
        }
        // Wake the blocked read; its reply (nil, or entries that raced in) is
        // still processed, and entries go straight back to the stream.
        unblock_reader();
        if (lease_timer) lease_timer->stop();
        if (reclaim_timer) reclaim_timer->stop();
        if (janitor_timer) janitor_timer->stop();
        for (auto& job : pool.take_unstarted()) {
            running.erase(job.get());
            ++free_slots;
            return_to_stream(*job);
        }
        publish();
    }

    void cancel_running() {
        for (auto& [_, job] : running) {
            job->interrupted = true;
            job->stop.request_stop();
        }
    }

    template <class Pred>
    bool wait_state(Pred pred, std::chrono::steady_clock::time_point until) {
        std::unique_lock lock(state_mutex);
        return state_cv.wait_until(lock, until, pred);
    }
};

// ---- public ----

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
    auto& im = *impl_;
    im.opts = std::move(options);
    if (im.opts.id.empty()) throw InvalidArgument("server id is empty");
    if (im.opts.id.find_first_of(" \t\r\n{}") != std::string::npos) {
        throw InvalidArgument("server id '" + im.opts.id + "' contains a space or brace");
    }
    if (im.opts.concurrency == 0) throw InvalidArgument("concurrency is 0");
    if (im.opts.read_block.count() <= 0) throw InvalidArgument("read_block is not positive");
    if (im.opts.heartbeat_interval.count() <= 0) throw InvalidArgument("heartbeat_interval is not positive");
    if (im.opts.lease.count() < 3) throw InvalidArgument("lease must be at least 3 ms");
    if (im.opts.dead_after <= im.opts.heartbeat_interval) {
        throw InvalidArgument("dead_after (" + std::to_string(im.opts.dead_after.count()) +
                              " ms) must be longer than heartbeat_interval (" +
                              std::to_string(im.opts.heartbeat_interval.count()) + " ms)");
    }
    if (im.opts.max_deliveries == 0) throw InvalidArgument("max_deliveries is 0");
    if (im.opts.orphan_timeout.count() <= 0) throw InvalidArgument("orphan_timeout is not positive");
    if (auto st = validate_prefix(im.opts.prefix); !st) throw_error(st.error());
    (void)r::parse_url(im.opts.redis).value();  // a bad URL fails here, not later
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
    if (auto st = validate_queue_name(queue); !st) throw_error(st.error());
    if (!handler) throw InvalidArgument("handler for queue '" + std::string(queue) + "' is empty");
    if (im.queues.count(queue)) {
        throw InvalidArgument("queue '" + std::string(queue) + "' already has a handler");
    }
    im.queues.emplace(std::string(queue),
                      Impl::Queue{QueueKeys(im.opts.prefix, queue), std::move(handler), nullptr, -1, false, -1, "0-0", {}, {}, {}});
}

void Server::start() {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (im.started) return;
        if (im.queues.empty()) throw InvalidArgument("no handler registered: call handle() first");
        im.started = true;
    }
    for (auto& [_, q] : im.queues) im.order.push_back(&q);
    im.rt = std::make_unique<Runtime>("sf-server");
    try {
        im.rt->call([&im] { im.start_on_loop(); });
    } catch (...) {
        // Nothing was started that needs a shutdown; leave a clean, unstarted server.
        im.rt->stop();
        im.rt.reset();
        im.order.clear();
        std::lock_guard lock(im.state_mutex);
        im.started = false;
        throw;
    }
    im.pool.start(im.opts.concurrency, [&im](std::shared_ptr<Impl::Job>& job) { im.run_job(job); });
}

void Server::run() {
    start();
    auto& im = *impl_;
    std::unique_lock lock(im.state_mutex);
    im.state_cv.wait(lock, [&] { return im.shut_down; });
}

void Server::shutdown(std::chrono::milliseconds grace) {
    auto& im = *impl_;
    if (t_handler_of == &im) {
        throw InvalidArgument("shutdown() called from one of this server's handlers would wait for "
                              "itself; call it from another thread");
    }
    {
        std::unique_lock lock(im.state_mutex);
        if (!im.started || im.shut_down) return;
        if (im.shutting_down) {
            // Another thread is shutting down; wait for it.
            im.state_cv.wait(lock, [&] { return im.shut_down; });
            return;
        }
        im.shutting_down = true;
    }
    im.rt->call([&im] { im.begin_stop(); });
    auto until = std::chrono::steady_clock::now() + grace;
    // The outstanding read counts too: its entries go back to the stream.
    if (!im.wait_state([&] { return im.in_flight == 0 && !im.read_pending; }, until)) {
        log().warn("server {}: grace period over; canceling running handlers", im.opts.id);
        im.rt->call([&im] { im.cancel_running(); });
        // Handlers must honour their cancel token; wait for them, saying so.
        while (!im.wait_state([&] { return im.in_flight == 0; },
                              std::chrono::steady_clock::now() + 5s)) {
            log().warn("server {}: still waiting for canceled handlers to return", im.opts.id);
        }
    }
    im.wait_state([&] { return im.writes_pending == 0; },
                  std::chrono::steady_clock::now() + im.opts.command_timeout + 1s);
    // Remove the heartbeats, bounded by the command timeout.
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    im.rt->post([&im, done] {
        auto left = std::make_shared<std::size_t>(im.queues.size());
        for (auto* q : im.order) {
            im.topo->send(r::Route{q->keys.servers()}, {"ZREM", q->keys.servers(), im.opts.id},
                          [done, left](Result<r::Reply>) {
                              if (--*left == 0) done->set_value();
                          });
        }
    });
    fut.wait_for(im.opts.command_timeout + 1s);
    im.rt->stop();
    im.pool.stop();
    {
        std::lock_guard lock(im.state_mutex);
        im.shut_down = true;
    }
    im.state_cv.notify_all();
}

Server::Stats Server::stats() const {
    const auto& c = impl_->counters;
    return Stats{c.succeeded.load(), c.failed.load(), c.retried.load(), c.dead.load(),
                 c.expired.load(),   c.malformed.load(), c.returned.load(), c.canceled.load()};
}

}  // namespace v1
}  // namespace streamfleet
