#pragma once

// ClusterTopology: routes every command of a Redis Cluster to the primary that
// holds its key's hash slot (redis-cluster://h:p,h:p). Loop thread only.
//
// Slot map: asked of the seeds and the nodes it knows, in turn (CLUSTER SHARDS,
// or CLUSTER SLOTS on a server that does not know it), first at start(), then
// again, at most every 200 ms, after a MOVED, a CLUSTERDOWN or a lost node
// connection, and every 500 ms while a primary's link stays down. A MOVED also
// moves its slot in the map at once.
//
// Connections: one shared pipelined Connection per primary, made on first use
// and closed once a new map no longer names that node a primary (and nothing
// is in flight on it).
//
// What the topology resends, and what it leaves to the caller: only commands
// that Redis refused without running them are resent here — MOVED (to the new
// owner), ASK (ASKING + the command on the named node, once), TRYAGAIN and
// CLUSTERDOWN (after a backoff), and commands still queued on a node that left
// the map — all within the command's own deadline. A command that was written
// and then lost with its link may have run: it fails with
// errc::connection_lost, as on one server, and the callers that own resends
// (the client outbox, the server's durable writes) resend it.
//
// Order: replies come back to each caller through its own callback. While a
// slot's commands are being redirected or retried the slot is gated: commands
// sent meanwhile wait behind the redirected ones, so one key's pipelined
// batch keeps its order.

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "redis/topology.hpp"

namespace streamfleet::detail::redis {

/// Redirections and retries seen, for tests and diagnostics.
struct ClusterCounters {
    std::uint64_t moved = 0;
    std::uint64_t ask = 0;
    std::uint64_t tryagain = 0;
    std::uint64_t clusterdown = 0;
    std::uint64_t rerouted = 0;   // queued on a node that left the map, sent elsewhere
    std::uint64_t refreshes = 0;  // slot maps loaded
};

class ClusterTopology final : public Topology {
public:
    ClusterTopology(Runtime& rt, Address address, ConnectionOptions options);
    ~ClusterTopology() override;

    void start() override;
    void send(const Route& route, std::span<const std::string_view> argv, ReplyCallback cb,
              CommandOptions opts) override;
    using Topology::send;
    void send_encoded(const Route& route, std::string_view resp, ReplyCallback cb,
                      CommandOptions opts) override;
    std::shared_ptr<Connection> dedicated(const Route& route, std::string_view purpose) override;
    void on_state(StateCallback cb) override { listeners_.push_back(std::move(cb)); }
    void when_ready(std::function<void()> cb) override;
    int shard(std::string_view key) const override { return key_slot_of(key); }
    std::string node_of(std::string_view key) const override;
    void close() override;
    std::string describe() const override { return address_.redacted(); }

    const ClusterCounters& counters() const noexcept { return counters_; }
    /// The sums over every ClusterTopology of the process (any thread).
    static ClusterCounters totals() noexcept;
    /// Primaries in the current map, "host:port".
    std::vector<std::string> primaries() const;

private:
    struct Command;
    struct Node {
        Endpoint endpoint;
        std::shared_ptr<Connection> conn;
        bool primary = false;  // in the current map
    };
    struct Gate {                      // a slot whose commands are being redirected or retried
        std::uint64_t opened_seq = 0;  // dispatches up to this one are older
        std::size_t older = 0;         // sent before the gate closed, in flight
        std::deque<std::shared_ptr<Command>> again;  // redirected or refused: go first
        std::deque<std::shared_ptr<Command>> held;   // sent while gated: go after
        Clock::time_point not_before{};              // TRYAGAIN / CLUSTERDOWN backoff
        unsigned retries = 0;
    };

    static int key_slot_of(std::string_view key);
    /// "host:port" (or "[v6]:port") of a node; an empty or "?" host is the one asked.
    static std::optional<Endpoint> parse_address(std::string_view s, const Endpoint& asked);
    static std::atomic<std::uint64_t> g_refreshes;  // totals() of refreshes
    void submit(std::shared_ptr<Command> cmd);
    void dispatch(const std::shared_ptr<Command>& cmd, Node* node, bool asking);
    void on_reply(const std::shared_ptr<Command>& cmd, const std::string& hp, Result<Reply> res);
    void redirect_later(const std::shared_ptr<Command>& cmd, bool backoff);
    void pump(std::uint16_t slot);
    void arm_pump();
    Node& node_at(const std::string& hostport, const Endpoint& endpoint);
    Node* owner(std::uint16_t slot);
    Connection& conn_of(Node& node);
    void refresh_soon();
    void refresh();
    void ask_next(std::shared_ptr<std::vector<std::string>> candidates, std::size_t i);
    bool load_map(const Reply& reply, bool shards, const Endpoint& asked);
    void retire_departed();
    bool primary_down() const;
    void expire_early();
    void notify(ConnState st, const Error* why);
    ServerConfig server_config(const Endpoint& e) const;

    Runtime& rt_;
    Address address_;
    ConnectionOptions options_;
    std::map<std::string, Node> nodes_;  // "host:port" -> node
    std::vector<std::string> owner_of_;  // slot -> "host:port", empty: unknown
    std::unordered_map<std::uint16_t, Gate> gates_;
    std::vector<std::uint32_t> inflight_;          // slot -> commands in flight
    std::vector<std::shared_ptr<Command>> early_;  // sent before the first map
    std::vector<std::function<void()>> waiting_;
    std::vector<StateCallback> listeners_;
    ClusterCounters counters_;
    std::uint64_t seq_ = 0;
    bool known_ = false;
    bool closed_ = false;
    bool refreshing_ = false;
    bool refresh_again_ = false;
    Clock::time_point last_refresh_{};
    Timer refresh_timer_;
    Timer pump_timer_;
    std::shared_ptr<bool> alive_;  // callbacks check it: a reply may outlive the topology
};

}  // namespace streamfleet::detail::redis
