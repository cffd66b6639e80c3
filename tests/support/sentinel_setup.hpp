#pragma once

// SentinelSetup: a real Sentinel deployment for one test — one primary, one
// replica and three sentinels (redis-server --sentinel, quorum 2), each a
// RedisServer on a free loopback port in a temp dir, so they die with the test
// (PDEATHSIG) and vanish with this object. Timeouts are as short as Sentinel
// allows, so a failover takes seconds. Start and fail over from the test's
// main thread (PDEATHSIG follows the thread that started a process).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.hpp"

namespace streamfleet::test {

struct SentinelSetupOptions {
    std::string master_name = "sfmaster";
    /// How long a silent master takes to be subjectively down.
    int down_after_ms = 1000;
    /// Also the minimum time between two failovers of the same master.
    int failover_timeout_ms = 2000;
};

class SentinelSetup {
public:
    explicit SentinelSetup(SentinelSetupOptions options = {});
    ~SentinelSetup();
    SentinelSetup(const SentinelSetup&) = delete;
    SentinelSetup& operator=(const SentinelSetup&) = delete;

    /// redis-sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/NAME
    std::string url() const;
    const std::string& master_name() const { return options_.master_name; }

    /// The data node the sentinels name as master now (0 or 1).
    int master() const;
    RedisServer& node(int i) { return *nodes_.at(static_cast<std::size_t>(i)); }
    RedisServer& sentinel(int i) { return *sentinels_.at(static_cast<std::size_t>(i)); }

    /// SENTINEL FAILOVER (on the first live sentinel), then waits until every live sentinel names
    /// the other node and it says ROLE master. Returns the new master's index.
    int failover(std::chrono::milliseconds limit = std::chrono::seconds(30));
    /// SIGKILLs the master and waits until the sentinels have promoted the
    /// replica. Returns the new master's index.
    int kill_master(std::chrono::milliseconds limit = std::chrono::seconds(30));
    /// Starts a killed node again (empty) as a replica of the current master
    /// (as the sentinels would make it) and waits until it is in sync.
    void revive(int index, std::chrono::milliseconds limit = std::chrono::seconds(30));
    /// Waits until every live sentinel names node `index` as master, knows
    /// the other sentinels, and that node says ROLE master.
    void wait_agreed(int index, std::chrono::milliseconds limit = std::chrono::seconds(30));

    /// One command to a server of this setup, by port; the reply in RESP text
    /// (empty when it does not answer within a second). For checks only.
    static std::string raw(std::uint16_t port, const std::string& inline_command);

private:
    void wait_replica_known(std::chrono::milliseconds limit);

    SentinelSetupOptions options_;
    std::vector<std::unique_ptr<RedisServer>> nodes_;
    std::vector<std::unique_ptr<RedisServer>> sentinels_;
};

}  // namespace streamfleet::test
