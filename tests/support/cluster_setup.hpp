#pragma once

// ClusterSetup: a real Redis Cluster for one test — 3 primaries with one
// replica each, on free loopback ports, each node's bus on a free port of its
// own (cluster-port), cluster-node-timeout short so failovers take about a
// second or two. Built by `redis-cli --cluster create`. Every node is a
// RedisServer, so it dies with the test (PDEATHSIG). Start it from the test's
// main thread.
//
// Helpers drive the cluster the way an operator would: move one slot step by
// step (so a test can hold it between MIGRATING and the hand-over, the ASK
// window), fail a primary over to its replica, or SIGKILL a primary.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.hpp"

namespace streamfleet::test {

class ClusterSetup {
public:
    explicit ClusterSetup(int primaries = 3, int replicas_each = 1);
    ~ClusterSetup();
    ClusterSetup(const ClusterSetup&) = delete;
    ClusterSetup& operator=(const ClusterSetup&) = delete;

    /// redis-cluster://127.0.0.1:P1,127.0.0.1:P2,... (every node a seed).
    std::string url() const;
    /// The same with only the first node as seed.
    std::string url_one_seed() const;

    std::size_t size() const { return nodes_.size(); }
    RedisServer& node(std::size_t i) { return *nodes_[i]; }
    /// The node index listening on `port`, or -1.
    int index_of(std::uint16_t port) const;

    /// `redis-cli -p PORT ARGS` output (trimmed). Throws when redis-cli fails to run.
    std::string cli(std::uint16_t port, const std::string& args) const;

    /// CLUSTER KEYSLOT of `key` (asked of a live node).
    int keyslot(const std::string& key) const;
    /// Port of the primary serving `slot`, asked of a live node (CLUSTER SHARDS).
    std::uint16_t owner_port(int slot) const;
    /// Ports of the current primaries (alive ones).
    std::vector<std::uint16_t> primary_ports() const;
    /// Port of a replica of the primary on `primary_port`, 0 if none.
    std::uint16_t replica_of(std::uint16_t primary_port) const;
    /// CLUSTER MYID of a node.
    std::string node_id(std::uint16_t port) const;

    /// Step 1 of a slot move: IMPORTING on `to`, MIGRATING on `from`. From now on
    /// the source answers ASK for keys it no longer has.
    void begin_migration(int slot, std::uint16_t from, std::uint16_t to);
    /// Step 2: MIGRATE up to `batch` keys of the slot from `from` to `to`; returns how many.
    int migrate_keys(int slot, std::uint16_t from, std::uint16_t to, int batch = 100);
    /// Step 3: SETSLOT NODE on both, then on every other primary: MOVED from now on.
    void finish_migration(int slot, std::uint16_t from, std::uint16_t to);

    /// CLUSTER FAILOVER on the replica `replica_port`; waits until it is a primary.
    void failover(std::uint16_t replica_port);
    /// SIGKILL of the node on `port`.
    void kill(std::uint16_t port);
    /// Waits for cluster_state:ok on every live node and every slot served by a live primary.
    void wait_ok(int seconds = 30) const;

private:
    std::vector<std::unique_ptr<RedisServer>> nodes_;
    std::vector<bool> dead_;
    std::uint16_t any_live_port() const;
};

}  // namespace streamfleet::test
