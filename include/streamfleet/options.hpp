#pragma once

/// @file
/// Options for clients and tasks. Aggregates with commented defaults; use
/// designated initialisers: `ClientOptions{.redis = "redis://host:6379"}`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "streamfleet/errors.hpp"

namespace streamfleet {
inline namespace v1 {

/// Confirm writes only once replicas have them (Redis WAIT), for
/// ClientOptions::wait_replicas and ServerOptions::wait_replicas. With
/// `replicas` > 0 every batch of writes (a client's enqueues, a server's
/// outcomes) is followed by `WAIT replicas timeout` on the same connection,
/// and counts as done only when WAIT reports at least `replicas` replicas;
/// fewer means not confirmed: the batch is kept and sent again later, as after
/// a lost link. So a failover that promotes a replica (Sentinel) cannot drop
/// a confirmed write, at the cost of one replication round trip per batch
/// (docs/scale-out.md). A resent enqueue of a task that did get in is not
/// added twice: the enqueue script finds the task's state record, or, for a
/// task without one, its note in the client's ledger of unsettled tasks. A
/// resent outcome is idempotent. With `replicas` replicas gone, writes stay unconfirmed
/// (enqueues buffered, outcomes pending) until they are back.
struct WaitReplicas {
    /// Replicas that must acknowledge each batch; 0 (default) = no WAIT.
    int replicas = 0;
    /// How long WAIT may wait for them; must be positive when replicas > 0.
    std::chrono::milliseconds timeout{1'000};
};

struct ClientOptions {
    /// Redis URL: redis://[user[:password]@]host[:port][/db], unix:///path[?db=N],
    /// redis-sentinel://[user:password@]h:p,h:p/MASTER[?db=N&sentinel_user=U&sentinel_password=P]
    /// or redis-cluster://[user:password@]h:p,h:p (docs/scale-out.md).
    std::string redis = "redis://127.0.0.1:6379";
    /// Prefix of every key (must match the servers').
    std::string prefix = "streamfleet:";
    /// Most tasks accepted but not yet in Redis (for example while Redis is
    /// down); past it enqueue waits up to `full_timeout`, then throws QueueFull.
    std::size_t max_buffered = 100'000;
    /// Most bytes of payload (plus ~256 bytes a task) held the same way.
    std::size_t max_buffered_bytes = std::size_t{64} << 20;
    /// How long enqueue waits for room in a full buffer; 0 = throw QueueFull at once.
    std::chrono::milliseconds full_timeout{0};
    /// Durable spool: when set, every accepted task is appended to this file
    /// before enqueue returns and dropped from it once Redis has it. A client
    /// opened on the same file sends what a crashed predecessor left. One live
    /// client per file. Without a spool, a client killed right after enqueue()
    /// returned loses what it had not sent yet (Client::enqueue_confirmed()
    /// waits until Redis has the task instead).
    std::string spool_path{};
    /// fsync the spool after every accepted task (survives power loss); false
    /// leaves flushing to the OS (survives a process crash only).
    bool spool_fsync = true;
    /// Largest payload accepted (Redis's own limit for a string is 512 MiB).
    std::size_t max_payload_bytes = std::size_t{512} << 20;
    /// How often the client refreshes its entry in P{Q}:clients.
    std::chrono::milliseconds heartbeat_interval{10'000};
    /// Time limit of each Redis command. A command's limit grows with its size
    /// (by 1 s per 10 MB sent), so a large payload is not timed out while Redis
    /// is still reading it.
    std::chrono::milliseconds command_timeout{5'000};
    /// Called once for each task Redis refused to store (Refused: NOPERM,
    /// WRONGTYPE, a payload over `proto-max-bulk-len`, OOM past
    /// `oom_patience`, ...), with its id. The task is not resent and leaves
    /// the spool; a tracked task's handle also resolves as
    /// TaskStatus::refused. Runs on the client's event-loop thread: keep it
    /// short and do not call the client's waiting methods from it. Unset: the
    /// refusal is logged (a warning).
    std::function<void(const std::string& task_id, const Refused& why)> on_refused{};
    /// How long a task Redis refuses for lack of memory (OOM under
    /// `maxmemory` with `noeviction`) is retried, with backoff (0.5 s doubling
    /// up to 5 s), before it is refused for good: memory may come back as
    /// workers consume the queue. Other tasks are not held up meanwhile.
    /// 0 = refuse at the first OOM.
    std::chrono::milliseconds oom_patience{30'000};
    /// Keep a state record per task (P{Q}:task:ID) so Client::get() and
    /// Client::cancel() can find it. Costs Redis a hash per live task and a
    /// little CPU per task (docs/benchmarks.md); false = pure fire-and-forget,
    /// whose tasks get() and cancel() cannot find (NotFound).
    bool track_state = true;
    /// Interoperate with the Go streamfleet library (docs/wire-format.md,
    /// "Go-compatible mode"): use its key names -- queue stream PREFIX+queue,
    /// notification stream PREFIX+"receiver:"+id, heartbeats in
    /// PREFIX+queue+":receivers" -- so Go workers run this client's tasks and
    /// their notifications reach it; like a Go client, this client also deletes
    /// the notification streams of clients silent for 10 minutes. Queue names
    /// may then carry one hash tag ("{orders}"). No state records are written
    /// (a Go worker would never finish them), so get() and cancel() do not find
    /// this client's tasks. heartbeat_interval must stay at most 5 minutes.
    /// Servers and clients of one queue must agree on this setting.
    bool go_compatible = false;
    /// WAIT for replicas after each batch of enqueues (see WaitReplicas).
    WaitReplicas wait_replicas{};
};

/// How the delay before a retry grows with the retries so far (n = 0, 1, ...),
/// from the base `TaskOptions::retry_delay`, never past `backoff_max`:
/// fixed: base; linear: base × (n + 1); exponential: a uniformly random
/// delay in [0, base × 2^n] ("full jitter", which spreads a burst of failures).
enum class Backoff { fixed, linear, exponential };

struct TaskOptions {
    /// Retries after a failure; 0 = retry until success or expiry.
    std::uint32_t max_retries = 0;
    /// Delay between retries (the base of `backoff`). Left at 0 with `backoff`
    /// unset (the defaults), failures are retried after the servers' default
    /// backoff: 0.5–1 s, then doubling (the delay drawn from the upper half of
    /// each step) up to 30–60 s, so a task that always fails never spins. For
    /// immediate retries ask for them: `.backoff = Backoff::fixed` with 0.
    std::chrono::milliseconds retry_delay{0};
    /// Retry delay strategy; unset = fixed `retry_delay` (the v1 wire format's
    /// behaviour, which other implementations understand), or the default
    /// backoff above when `retry_delay` is 0.
    std::optional<Backoff> backoff{};
    /// Cap of the retry delay under `backoff`; 0 = one hour.
    std::chrono::milliseconds backoff_max{0};
    /// Run the task no sooner than this long after enqueue (0 = at once). The
    /// task waits in P{Q}:delayed and servers promote it when due, to the
    /// millisecond, without polling.
    std::chrono::milliseconds delay{0};
    /// Or: run no sooner than this instant. If both are set, the later wins.
    std::optional<std::chrono::system_clock::time_point> run_at{};
    /// Time one run may take; past it the handler's cancel token fires and the
    /// run counts as a failure (retried per policy). 0 = no limit.
    std::chrono::milliseconds run_timeout{0};
    /// How long the state of a finished task (completed, dead, expired,
    /// canceled) stays readable with Client::get(); unset = 24 hours; 0 = drop
    /// it as the task finishes.
    std::optional<std::chrono::milliseconds> retention{};
    /// The task's id; empty (the default) = a new UUIDv7. A chosen id (1-200
    /// printable ASCII bytes, no space) names one task of the queue: an enqueue
    /// of a second task with that id, while the first is known (until a day
    /// after it is due, at least its retention), is refused with Duplicate.
    /// Not with `unique_key` or enqueue_many.
    std::string id{};
    /// Uniqueness: a second task of the queue with the same key, enqueued
    /// within `unique_ttl` of this one, is refused with Duplicate (carrying
    /// this task's id). Such an enqueue waits for Redis (one round trip).
    std::string unique_key{};
    /// The uniqueness window; required (> 0) with `unique_key`.
    std::chrono::milliseconds unique_ttl{0};
    /// The task expires (is not run) after this instant, when set.
    std::optional<std::chrono::system_clock::time_point> expires_at{};
    /// Or: the task expires this long after enqueue (0 = never). If both are
    /// set, the earlier instant wins.
    std::chrono::milliseconds expires_in{0};
};

}  // namespace v1
}  // namespace streamfleet
