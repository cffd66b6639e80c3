#pragma once

// Topology: the one interface through which everything above lib/redis talks to
// Redis, whatever the deployment. A caller names the key a command is about
// (Route); a standalone server ignores it, a cluster will hash it to a slot
// and a Sentinel setup will follow failovers — without the caller changing.
// Loop thread only.

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "redis/connection.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet::detail::redis {

/// What a command is about, for routing. Every key of one queue carries the
/// same hash tag, so one key per command is enough.
struct Route {
    std::string_view key;
};

class Topology {
public:
    virtual ~Topology() = default;

    /// Starts connecting. Commands sent before the link is up wait for it
    /// (bounded by their deadline).
    virtual void start() = 0;

    /// Sends one command to the node serving `route`.
    virtual void send(const Route& route, std::span<const std::string_view> argv, ReplyCallback cb,
                      CommandOptions opts = {}) = 0;
    void send(const Route& route, std::initializer_list<std::string_view> argv, ReplyCallback cb,
              CommandOptions opts = {}) {
        send(route, std::span<const std::string_view>(argv.begin(), argv.size()), std::move(cb),
             opts);
    }

    /// Sends one command already encoded as RESP to the node serving `route`.
    virtual void send_encoded(const Route& route, std::string_view resp, ReplyCallback cb,
                              CommandOptions opts = {}) = 0;
    /// A new connection of its own for blocking commands (XREADGROUP BLOCK), so
    /// they never hold up the shared pipeline. Started; owned by the caller.
    virtual std::shared_ptr<Connection> dedicated(const Route& route, std::string_view purpose) = 0;

    /// Listener for the shared link's ready/down/closed edges.
    virtual void on_state(StateCallback cb) = 0;

    /// Runs `cb` (loop thread) once the topology knows how keys are laid out,
    /// so shard() answers for good: at once if it does already. Components
    /// that group keys by shard (the readers) plan in here.
    virtual void when_ready(std::function<void()> cb) = 0;

    /// Keys with the same shard may be named together in one multi-key
    /// command (one XREADGROUP or XREAD over several streams); keys of
    /// different shards never are. One plain Redis: every key has shard 0. A
    /// cluster node (even one holding every slot): the key's hash slot, since
    /// Redis refuses a command whose keys span slots (CROSSSLOT).
    virtual int shard(std::string_view key) const = 0;

    /// "host:port" of the node serving `key` now (one server: its endpoint), for
    /// reports (`streamfleet stats`) and for readers checking their connection.
    virtual std::string node_of(std::string_view key) const = 0;

    /// Closes every connection it made (except dedicated ones, which their
    /// owners close). Pending commands fail with errc::closed.
    virtual void close() = 0;

    /// The address, password masked, for logs.
    virtual std::string describe() const = 0;
};

/// For the owner of a dedicated connection opened for `key`: the topology now
/// places the key on another node (a slot moved, a replica was promoted), so
/// the connection should be closed and a new one asked of dedicated() before
/// the next blocking read. Never true for one server.
inline bool moved_away(const Topology& topo, std::string_view key, const Connection& conn) {
    return topo.node_of(key) != conn.endpoint().to_string();
}

/// A blocking read on a dedicated connection was redirected (MOVED, ASK) or
/// found the cluster down: the topology did not see that reply, so a routed
/// command for `key` lets it learn the new layout. `then` runs after it, on
/// the loop, whatever its outcome.
bool is_redirect(const Error& e) noexcept;
void relearn(Topology& topo, std::string key, std::function<void()> then);

/// Builds the topology for `address`. redis:// and unix:// name one server;
/// when that server is a cluster node it must hold every slot (a one-node
/// cluster), and keys are grouped by slot (shard()). redis-cluster:// seeds a
/// ClusterTopology (redis/cluster_topology.hpp); redis-sentinel:// asks the
/// sentinels for the master and follows failovers (sentinel_topology.hpp).
/// rediss:// parses but is not implemented yet: errc::unsupported.
Result<std::unique_ptr<Topology>> make_topology(Runtime& rt, const Address& address,
                                                ConnectionOptions options = {});

}  // namespace streamfleet::detail::redis
