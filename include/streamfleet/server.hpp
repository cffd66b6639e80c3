#pragma once

/// @file
/// The worker side: run handlers for the tasks of one or more queues.
///
/// **Example**:
/// @code
/// streamfleet::Server server({.redis = "redis://127.0.0.1:6379", .id = "worker-1",
///                             .concurrency = 16});
/// server.handle("emails", [](streamfleet::TaskContext& task) {
///     send_email(task.data());          // throw to fail (and retry per the task's policy)
/// });
/// server.run();                          // until shutdown() or a signal handler calls it
/// @endcode

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>

#include "streamfleet/codec.hpp"
#include "streamfleet/errors.hpp"
#include "streamfleet/export.hpp"
#include "streamfleet/options.hpp"
#include "streamfleet/task.hpp"

namespace streamfleet {
namespace detail {
struct ServerTestAccess;
}  // namespace detail
inline namespace v1 {

/// @brief Server::start() found another server running with the same id: two servers with one
/// id would run the same tasks. what() names the id.
class STREAMFLEET_API ServerIdInUse : public Error {
public:
    using Error::Error;
};

struct ServerOptions {
    /// Redis URL, as for ClientOptions.
    std::string redis = "redis://127.0.0.1:6379";
    /// This server's unique, stable id: its consumer name in every queue's
    /// group. A restarted server should reuse its id (it takes back what its
    /// previous life left pending); while a server with this id runs, a second
    /// one refuses to start (ServerIdInUse).
    std::string id{};
    /// Prefix of every key (must match the clients').
    std::string prefix = "streamfleet:";
    /// Handlers running at once; the server never holds more tasks than this.
    unsigned concurrency = 8;
    /// Longest time one blocking read waits for new tasks.
    std::chrono::milliseconds read_block{2'000};
    /// How often the server refreshes its entry in P{Q}:servers.
    std::chrono::milliseconds heartbeat_interval{1'000};
    /// Time limit of each Redis command.
    std::chrono::milliseconds command_timeout{5'000};
    /// A delivered task whose server stops renewing it (every lease/3) for this
    /// long is taken over by another server (the reclaimer's safety net).
    std::chrono::milliseconds lease{30'000};
    /// A server whose heartbeat is older than this (by Redis's clock, never the
    /// hosts') counts as dead: its pending tasks untouched this long are taken
    /// over at once, without waiting for the lease. It is also how long a
    /// crashed server's hold on its id outlives it (see start()).
    std::chrono::milliseconds dead_after{3'000};
    /// A task delivered more often than this goes to the dead letters with
    /// "exceeded N deliveries" (it keeps crashing or hanging its servers).
    std::uint32_t max_deliveries = 16;
    /// A client silent this long is gone: the janitor deletes its notification
    /// stream and its entry in P{Q}:clients. Keep it well above the clients'
    /// heartbeat interval.
    std::chrono::milliseconds orphan_timeout{600'000};
    /// Dead letters kept per queue: the janitor trims P{Q}:dead to about this
    /// many (oldest first), so poison tasks cannot fill Redis. 0 = no limit.
    std::size_t dead_max = 100'000;
    /// And drops dead letters older than this. 0 = no limit.
    std::chrono::milliseconds dead_max_age{std::chrono::hours(24 * 30)};
    /// Interoperate with the Go streamfleet library (docs/wire-format.md,
    /// "Go-compatible mode"): read the queue stream PREFIX+queue, notify
    /// clients on PREFIX+"receiver:"+id (created if missing, as Go clients
    /// expect) and sweep clients by PREFIX+queue+":receivers", so this server
    /// runs Go clients' tasks beside Go workers. A task held by a consumer that
    /// is not one of our registered servers (a Go worker) is taken over only
    /// once idle for 1 minute, the Go rule. Requires lease <= 60 s: Go servers
    /// take over what has been idle for a minute.
    bool go_compatible = false;
    /// WAIT for replicas after each batch of outcome writes (see WaitReplicas).
    WaitReplicas wait_replicas{};
};

/// @brief What a handler reports when it returns instead of throwing.
class STREAMFLEET_API Outcome {
public:
    /// The task is done.
    static Outcome success() { return Outcome(Kind::success, {}); }
    /// The run failed; the task is retried per its max_retries/retry_delay.
    static Outcome failure(std::string error) { return Outcome(Kind::failure, std::move(error)); }
    /// The run failed and retrying cannot help: dead-letter it now.
    static Outcome dead(std::string error) { return Outcome(Kind::dead, std::move(error)); }

    enum class Kind { success, failure, dead };
    Kind kind() const noexcept { return kind_; }
    const std::string& error() const noexcept { return error_; }

private:
    Outcome(Kind k, std::string e) : kind_(k), error_(std::move(e)) {}
    Kind kind_;
    std::string error_;
};

/// @brief One run of one task, as a handler sees it.
/// @note Valid only during the handler call.
class STREAMFLEET_API TaskContext {
public:
    struct Data;
    explicit TaskContext(const Data& d) : d_(d) {}

    const TaskId& id() const noexcept;
    const std::string& queue() const noexcept;
    /// The payload bytes.
    std::string_view data() const noexcept;
    /// The payload decoded from msgpack; throws InvalidArgument if it is not a `T`.
    template <class T>
    T as() const {
        return decode_msgpack<T>(data());
    }
    /// Retries before this run (0 on the first run).
    std::uint32_t retries() const noexcept;
    /// Times this stream entry has been delivered (> 1 after a crash or reclaim).
    std::uint64_t deliveries() const noexcept;
    /// When the task expires, if it does.
    std::optional<std::chrono::system_clock::time_point> deadline() const noexcept;
    /// Fires when the server shuts down (after its grace period) or the run is canceled.
    std::stop_token cancel_token() const noexcept;
    bool canceled() const noexcept { return cancel_token().stop_requested(); }

private:
    const Data& d_;
};

/// @brief A task taken with Server::pop(): run outside the server (by a client of an HTTP
/// gateway, say) and ended with Server::settle() within its lease.
struct PoppedTask {
    TaskId id;
    std::string queue;
    /// The payload bytes.
    std::string data;
    /// Retries before this run (0 on the first run).
    std::uint32_t retries = 0;
    /// Times this stream entry has been delivered (> 1 after a crash or reclaim).
    std::uint64_t deliveries = 1;
    /// settle() within this long, or the run counts as failed ("not settled within its lease")
    /// and the task is retried per its policy: the task's run_timeout when it has one, else the
    /// lease pop() asked for.
    std::chrono::milliseconds lease{0};
    /// When the task was enqueued (unix ms; 0 if its entry does not say).
    std::int64_t enqueued_ms = 0;
    /// When the task expires, if it does.
    std::optional<std::chrono::system_clock::time_point> deadline{};
};

/// A handler that fails by throwing (the exception's what() is kept).
using Handler = std::function<void(TaskContext&)>;
/// A handler that reports its outcome.
using OutcomeHandler = std::function<Outcome(TaskContext&)>;

class STREAMFLEET_API Server {
public:
    /// @throws InvalidArgument for a bad URL, prefix, empty id or zero concurrency.
    explicit Server(ServerOptions options);
    /// Calls shutdown() with a 10 s grace if still running.
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Registers the handler of `queue`, which reports an Outcome. Before
    /// start()/run() only.
    /// @throws InvalidArgument for a bad queue name or a second handler for it.
    void handle(std::string_view queue, OutcomeHandler handler);

    /// Registers a handler that returns nothing: returning means success,
    /// throwing means failure (the exception's what() becomes the error).
    template <class F>
    requires std::is_void_v<std::invoke_result_t<F&, TaskContext&>>
    void handle(std::string_view queue, F handler) {
        if constexpr (std::is_same_v<F, Handler> || std::is_pointer_v<F>) {
            if (!handler)
                throw InvalidArgument("handler for queue '" + std::string(queue) + "' is empty");
        }
        handle(queue, OutcomeHandler([h = std::move(handler)](TaskContext& ctx) mutable {
                   h(ctx);
                   return Outcome::success();
               }));
    }

    /// Pull mode for `queue`: its tasks run no handler here but wait, delivered to this server,
    /// for pop(), and each is ended by settle(). Before start()/run() only; a queue has a
    /// handler or is pulled, not both. The server reads a pulled queue only for pops that wait, so
    /// its tasks stay ready in Redis (for other servers too) until a pop takes one; a task read
    /// for a pop that gave up meanwhile waits 2 s for the next, then goes back to its stream.
    /// Popped tasks count towards
    /// `concurrency` (so a server that only pulls may set it high: it starts no handler thread
    /// for pulled queues), their leases are renewed in Redis while held, and a server that dies
    /// holding them leaves them to be taken over as any crashed server's.
    /// @throws InvalidArgument for a bad queue name or a queue already handled or pulled.
    void pull(std::string_view queue);

    using PopCallback = std::function<void(std::optional<PoppedTask>)>;
    /// Takes the next task of pulled `queue`, waiting up to `wait` for one; `done` gets it, or
    /// nullopt when none came in time (or the server is stopping). `lease` (> 0) is how long
    /// the caller has to settle() it (the task's run_timeout wins when it has one). Any thread;
    /// `done` runs on the server's loop thread: keep it short, do not call waiting methods.
    /// @throws InvalidArgument for a queue not pulled, a non-positive lease, or a server not
    ///         started; ClosedError once shutdown() has begun.
    void pop_async(std::string_view queue, std::chrono::milliseconds wait,
                   std::chrono::milliseconds lease, PopCallback done);
    /// pop_async(), waiting for its answer.
    std::optional<PoppedTask> pop(std::string_view queue, std::chrono::milliseconds wait,
                                  std::chrono::milliseconds lease);
    /// Ends a popped task of `queue` as a handler's outcome would: success completes it,
    /// failure retries it per its policy, dead dead-letters it. `done(true)` once the settle
    /// is taken (its lease stops; the loop hands the outcome to the outcome writer in its
    /// turn); `done(false)` when this server holds no popped task with that id (never popped
    /// here, already settled, or its lease ran out). Any thread, also during shutdown()'s
    /// grace; `done` runs on the calling thread before settle_async() returns. As with a
    /// handler's return, a server killed before the outcome reached Redis leaves the task to
    /// run again (at least once).
    /// @throws InvalidArgument for a queue not pulled; ClosedError once shut down.
    void settle_async(std::string_view queue, std::string_view id, Outcome outcome,
                      std::function<void(bool)> done);
    /// settle_async(), waiting for its answer.
    bool settle(std::string_view queue, std::string_view id, Outcome outcome);

    /// Starts reading and running tasks in the background. Returns once this
    /// server holds its id: at once, or, after a crash of a previous life with
    /// the same id, within dead_after + heartbeat_interval when that life's hold
    /// lapses.
    /// @throws InvalidArgument when no queue is handled or pulled.
    /// @throws ServerIdInUse when a running server has the same id.
    void start();
    /// start(), then blocks until shutdown() (from another thread or a signal
    /// handler's thread) has finished.
    void run();
    /// Stops reading; lets running handlers finish within `grace`, then fires
    /// their cancel tokens and waits for them; returns read-but-unstarted tasks
    /// to their stream; writes every outcome; leaves the registry (if entries it
    /// could not ack are left, it marks itself departed so that peers take
    /// them at once) and releases its id. Idempotent, thread-safe.
    /// @throws InvalidArgument when called from one of this server's handlers
    ///         (it would wait for itself).
    void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(10));

    struct Stats {
        std::uint64_t succeeded = 0, failed = 0, retried = 0, dead = 0, expired = 0, malformed = 0,
                      returned = 0, canceled = 0;
    };
    /// Counters since start.
    Stats stats() const;
    /// The same for one queue (malformed and returned are counted for the server only).
    /// @throws InvalidArgument for a queue this server neither handles nor pulls, or before
    ///         start().
    Stats stats(std::string_view queue) const;

    /// This server's metrics in the Prometheus text format (0.0.4), by queue, since start():
    /// counters streamfleet_tasks_{completed,failed,retried,dead,expired,canceled}_total and
    /// histograms streamfleet_handler_duration_seconds (a run, from its start to its outcome;
    /// for a pulled queue, pop to settle) and streamfleet_start_latency_seconds (enqueue, or
    /// the due time, to the run's start). Serve it from the app's own /metrics; the queues'
    /// gauges (ready, delayed, ...) come from Inspector::metrics_text(). Any thread; "" before
    /// start().
    std::string metrics_text() const;

private:
    friend struct detail::ServerTestAccess;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace v1
}  // namespace streamfleet
