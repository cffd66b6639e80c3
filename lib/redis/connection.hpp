#pragma once

// Connection: responsible for one link to one Redis server — connect, handshake
// (AUTH, SELECT, CLIENT SETNAME, PING), automatic pipelining, per-command
// deadlines, and reconnect with backoff. Loop thread only.
//
// Command lifecycle:
//   send() while ready   → formatted straight into the output buffer, waiting in
//                          inflight_; the buffer leaves in one write at the end of
//                          the loop turn (TurnEnd), so a burst of sends is one
//                          syscall and one TCP segment train.
//   send() while not ready → queued_ with its own bytes; moved to the output
//                          buffer, in order, when the handshake completes.
//   reply                → completes the head of inflight_ (RESP is strictly
//                          ordered per connection).
// Every callback runs exactly once: with the reply, or with an error
// (timeout, connection lost, closed, ...). Callbacks never run inside send();
// immediate failures are delivered at the end of the current loop turn.
//
// Deadlines: a command fails with errc::timeout when its deadline passes, queued
// or in flight. The deadline grows with the command's size (kBytesPerMs) and
// is never earlier than the one of the command before it (replies come in
// order); the oldest command's deadline also grows with every byte received
// while it waits, so a large reply is not cut off as it arrives. Only the
// oldest command can be late: the others wait for its reply first. A timed-out in-flight command poisons the connection (its reply
// could still arrive and be matched to the next command), so the connection is
// reset; the other in-flight commands fail with errc::connection_lost, since
// they may or may not have run. Commands still queued survive the reset.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/random.hpp"
#include "redis/reply.hpp"
#include "redis/resp.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet::detail::redis {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The rate at which a command's time limit grows with its size: 10 MB/s,
/// slow enough for a loaded server or link (loopback moves GB/s).
inline constexpr std::size_t kBytesPerMs = 10'000;

struct ConnectionOptions {
    /// Default time a command may take, from send() to its reply, plus 1 ms
    /// per kBytesPerMs bytes of the command (so a 256 MiB payload gets 27 s
    /// more); never less than the command pipelined before it has left.
    milliseconds command_timeout{5000};
    /// Time for TCP connect plus handshake.
    milliseconds connect_timeout{5000};
    /// Reconnect backoff: exponential from `reconnect_min` up to `reconnect_max`,
    /// with the upper half of each step randomised (jitter), so many clients that
    /// lost the same server do not return in lockstep.
    milliseconds reconnect_min{50};
    milliseconds reconnect_max{1000};
    /// Keep commands sent while disconnected until the link returns or their
    /// deadline passes. When false they fail at once with the last connect error.
    bool offline_queue = true;
    /// CLIENT SETNAME on every connect, when not empty (visible in CLIENT LIST).
    std::string client_name{};
    /// The reconnect jitter's source; null: the process-wide one. Tests set
    /// it to fix the draws.
    Random* random = nullptr;
};

struct CommandOptions {
    /// Overrides ConnectionOptions::command_timeout when non-zero.
    milliseconds timeout{0};
    /// Time the server may legitimately hold the reply (BLOCK/BLPOP timeouts);
    /// added to the deadline so a blocking command is not mistaken for a hang.
    milliseconds block{0};
    /// Replies the command's bytes ask for: more than 1 when they hold several
    /// commands sent as one (a MULTI ... EXEC block, or a pipeline whose
    /// replies only matter together). The callback runs once, after the last:
    /// with the first error among them if any (a MOVED, OOM or READONLY at
    /// queue time, which EXEC then answers with EXECABORT), else the last reply.
    unsigned replies = 1;
};

/// Credentials and database replayed on every connect.
struct ServerConfig {
    Endpoint endpoint;
    std::string username{};
    std::string password{};
    int db = 0;
};

enum class ConnState {
    idle,        // created, start() not called yet
    connecting,  // TCP connect or handshake in progress
    ready,       // handshake done, commands flow
    down,        // lost or failed; a reconnect is scheduled
    closed,      // close() called; terminal
};
std::string_view to_string(ConnState s) noexcept;

using ReplyCallback = std::function<void(Result<Reply>)>;
/// Called on every state change; `reason` is set for transitions to down/closed.
using StateCallback = std::function<void(ConnState, const Error* reason)>;

class Connection : public std::enable_shared_from_this<Connection> {
    struct Private {};

public:
    /// Creates an idle connection; call start() to connect. Loop thread only.
    /// The connection closes itself when the runtime stops.
    static std::shared_ptr<Connection> create(Runtime& rt, ServerConfig server,
                                              ConnectionOptions options = {});

    Connection(Private, Runtime& rt, ServerConfig server, ConnectionOptions options);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Begins connecting (no-op unless idle).
    void start();

    /// Sends one command. `argv` is copied before send() returns.
    void send(std::span<const std::string_view> argv, ReplyCallback cb, CommandOptions opts = {});
    void send(std::initializer_list<std::string_view> argv, ReplyCallback cb,
              CommandOptions opts = {}) {
        send(std::span<const std::string_view>(argv.begin(), argv.size()), std::move(cb), opts);
    }

    /// Sends one command already encoded as RESP (append_command's output), so
    /// callers may format off the loop thread. `resp` is copied before return.
    void send_encoded(std::string_view resp, ReplyCallback cb, CommandOptions opts = {});

    /// Fails every pending command with errc::closed and releases the socket and
    /// timers. Idempotent; the connection is unusable afterwards.
    void close();

    /// Adds a listener for state changes.
    void on_state(StateCallback cb) { listeners_.push_back(std::move(cb)); }

    /// Asks `source` where to connect before every connect attempt, instead of
    /// keeping the endpoint it was created with (a Sentinel topology follows
    /// the master this way). An error fails the attempt as a connect error
    /// would: a transient one is retried with backoff, any other fails the
    /// queued commands and later sends at once, like a rejected AUTH.
    void set_endpoint_source(std::function<Result<Endpoint>()> source) {
        endpoint_source_ = std::move(source);
    }

    /// Drops the link now, if any, and connects again (asking the endpoint
    /// source anew) without waiting for the reconnect backoff. In-flight
    /// commands fail with errc::connection_lost, as on any link loss, so their
    /// owners' usual retry paths run; queued ones wait for the new link.
    void reconnect(const Error& reason);

    /// Receives pub/sub messages (["message", channel, payload]) after a
    /// SUBSCRIBE on this connection; without it an unsolicited reply is a
    /// protocol error.
    void on_message(std::function<void(const Reply&)> cb) { on_message_ = std::move(cb); }

    ConnState state() const noexcept { return state_; }
    /// The error that last took the connection down (empty when none yet).
    const Error& last_error() const noexcept { return last_error_; }
    const Endpoint& endpoint() const noexcept { return server_.endpoint; }

    /// Commands waiting for a reply or for the link.
    std::size_t pending() const noexcept { return inflight_.size() + queued_.size(); }
    /// Successful handshakes so far (1 after the first connect).
    std::uint64_t connects() const noexcept { return connects_; }
    /// Write calls issued so far (each carries every command of one loop turn).
    std::uint64_t writes() const noexcept { return writes_; }

private:
    struct Socket;
    struct WriteReq;
    struct Inflight {
        ReplyCallback cb;
        Clock::time_point deadline;
        milliseconds budget;  // for the timeout message
        unsigned replies = 1;  // still to come (CommandOptions::replies)
        std::unique_ptr<Reply> error{};  // the first error among them
    };
    struct Queued {
        std::string bytes;
        ReplyCallback cb;
        Clock::time_point deadline;
        milliseconds budget;
        unsigned replies = 1;
    };

    Clock::time_point ordered_deadline(Clock::time_point own) const;
    void begin_connect();
    void connect_to(const struct sockaddr* addr);
    template <class Append>
    void submit(Append&& append, ReplyCallback cb, CommandOptions o);
    void on_connected();
    void handshake_reply(std::uint64_t generation, std::string_view step, Result<Reply> r);
    void become_ready();
    void on_read(long nread, const char* data);
    void dispatch(std::unique_ptr<Reply> reply);
    void flush();
    void write_out();
    void fail_connection(Error reason, bool config_error = false);
    void release_socket();
    void schedule_reconnect();
    void on_deadline();
    void arm_deadline(Clock::time_point deadline);
    void set_state(ConnState s, const Error* reason);
    void complete_later(ReplyCallback cb, Error error);
    void push_internal(std::initializer_list<std::string_view> argv, std::string_view step);
    std::string where() const { return server_.endpoint.to_string(); }

    Runtime& rt_;
    ServerConfig server_;
    ConnectionOptions opts_;
    ConnState state_ = ConnState::idle;
    ConnState reported_ = ConnState::idle;  // last state told to listeners
    Error last_error_;
    std::uint64_t generation_ = 0;  // bumps on every connect attempt
    std::uint64_t connects_ = 0;
    std::uint64_t writes_ = 0;
    unsigned attempt_ = 0;  // failed attempts since the last success
    std::size_t handshake_left_ = 0;
    std::uint64_t stop_hook_ = 0;

    Socket* sock_ = nullptr;  // owned by libuv until its close callback
    struct GetAddrInfo;
    GetAddrInfo* resolving_ = nullptr;
    std::vector<sockaddr_storage> addrs_;  // resolved addresses, tried in order
    std::size_t next_addr_ = 0;
    ReplyParser parser_;
    std::string wbuf_;  // commands of this turn, not yet written
    std::deque<Inflight> inflight_;
    std::deque<Queued> queued_;
    std::vector<std::pair<ReplyCallback, Error>> deferred_;
    std::vector<StateCallback> listeners_;
    std::function<Result<Endpoint>()> endpoint_source_;
    std::function<void(const Reply&)> on_message_;
    bool config_failed_ = false;  // the last failure will not fix itself by waiting

    Clock::time_point deadline_due_{};  // when deadline_timer_ fires
    // Handles are closed explicitly in close(); their memory is released in
    // libuv close callbacks, independent of this object's lifetime.
    Timer deadline_timer_;
    Timer connect_timer_;
    Timer retry_timer_;
    TurnEnd turn_end_;
};

}  // namespace streamfleet::detail::redis
