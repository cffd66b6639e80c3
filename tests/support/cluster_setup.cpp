#include "support/cluster_setup.hpp"

#include <signal.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace streamfleet::test {

namespace {

struct NodeLine {
    std::string id;
    std::uint16_t port = 0;
    std::string flags;
    std::string master_id;
    std::vector<std::pair<int, int>> slots;
};

// CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>..."
std::vector<NodeLine> parse_nodes(const std::string& text) {
    std::vector<NodeLine> out;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream f(line);
        NodeLine n;
        std::string addr, ping, pong, epoch, link, slot;
        if (!(f >> n.id >> addr >> n.flags >> n.master_id >> ping >> pong >> epoch >> link)) {
            continue;
        }
        auto colon = addr.find(':');
        auto at = addr.find('@');
        if (colon == std::string::npos) continue;
        n.port = static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1, at - colon - 1)));
        while (f >> slot) {
            if (slot.front() == '[') continue;  // a migration in progress
            auto dash = slot.find('-');
            int a = std::stoi(slot.substr(0, dash));
            int b = dash == std::string::npos ? a : std::stoi(slot.substr(dash + 1));
            n.slots.emplace_back(a, b);
        }
        out.push_back(std::move(n));
    }
    return out;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

ClusterSetup::ClusterSetup(int primaries, int replicas_each) {
    int total = primaries * (1 + replicas_each);
    for (int i = 0; i < total; ++i) {
        RedisServerOptions o;
        o.cluster = false;  // not the one-node layout: set up below
        o.extra_config = {"cluster-enabled yes", "cluster-config-file nodes.conf",
                          "cluster-port " + std::to_string(free_port()),
                          "cluster-node-timeout 1000",
                          // Replicas take over as soon as they see the primary failed.
                          "cluster-replica-validity-factor 0", "appendonly no"};
        nodes_.push_back(std::make_unique<RedisServer>(o));
        dead_.push_back(false);
    }
    std::string args = "--cluster create";
    for (auto& n : nodes_) args += " 127.0.0.1:" + std::to_string(n->port());
    args += " --cluster-replicas " + std::to_string(replicas_each) + " --cluster-yes";
    auto out = cli(0, args);
    if (out.find("All 16384 slots covered") == std::string::npos) {
        throw std::runtime_error("redis-cli --cluster create failed:\n" + out);
    }
    wait_ok();
    // Every node must also know every replica (gossip spreads them after the slots), or
    // replica_of() could find none right after start.
    const auto replicas = static_cast<std::size_t>(primaries * replicas_each);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (std::size_t i = 0; i < nodes_.size();) {
        std::size_t seen = 0;
        for (const auto& n : parse_nodes(cli(nodes_[i]->port(), "CLUSTER NODES"))) {
            if (n.flags.find("slave") != std::string::npos) ++seen;
        }
        if (seen >= replicas) {
            ++i;
            continue;
        }
        if (std::chrono::steady_clock::now() > until) {
            throw std::runtime_error("the replicas did not show up in CLUSTER NODES in 30 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

ClusterSetup::~ClusterSetup() = default;

std::string ClusterSetup::cli(std::uint16_t port, const std::string& args) const {
    std::string cmd = "redis-cli";
    if (port != 0) cmd += " -p " + std::to_string(port);
    cmd += " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("cannot run " + cmd);
    std::string out;
    std::array<char, 4096> buf{};
    std::size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    pclose(p);
    return trim(out);
}

std::string ClusterSetup::url() const {
    std::string u = "redis-cluster://";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        u += (i ? "," : "") + std::string("127.0.0.1:") + std::to_string(nodes_[i]->port());
    }
    return u;
}

std::string ClusterSetup::url_one_seed() const {
    return "redis-cluster://127.0.0.1:" + std::to_string(nodes_.front()->port());
}

int ClusterSetup::index_of(std::uint16_t port) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i]->port() == port) return static_cast<int>(i);
    }
    return -1;
}

std::uint16_t ClusterSetup::any_live_port() const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (!dead_[i]) return nodes_[i]->port();
    }
    throw std::runtime_error("no live cluster node");
}

int ClusterSetup::keyslot(const std::string& key) const {
    return std::stoi(cli(any_live_port(), "CLUSTER KEYSLOT '" + key + "'"));
}

std::uint16_t ClusterSetup::owner_port(int slot) const {
    for (const auto& n : parse_nodes(cli(any_live_port(), "CLUSTER NODES"))) {
        if (n.flags.find("master") == std::string::npos) continue;
        if (n.flags.find("fail") != std::string::npos) continue;
        for (auto [a, b] : n.slots) {
            if (slot >= a && slot <= b) return n.port;
        }
    }
    return 0;
}

std::vector<std::uint16_t> ClusterSetup::primary_ports() const {
    std::vector<std::uint16_t> out;
    for (const auto& n : parse_nodes(cli(any_live_port(), "CLUSTER NODES"))) {
        if (n.flags.find("master") != std::string::npos &&
            n.flags.find("fail") == std::string::npos && !n.slots.empty()) {
            out.push_back(n.port);
        }
    }
    return out;
}

std::uint16_t ClusterSetup::replica_of(std::uint16_t primary_port) const {
    auto id = node_id(primary_port);
    for (const auto& n : parse_nodes(cli(any_live_port(), "CLUSTER NODES"))) {
        if (n.master_id == id && n.flags.find("fail") == std::string::npos) return n.port;
    }
    return 0;
}

std::string ClusterSetup::node_id(std::uint16_t port) const { return cli(port, "CLUSTER MYID"); }

void ClusterSetup::begin_migration(int slot, std::uint16_t from, std::uint16_t to) {
    auto s = std::to_string(slot);
    cli(to, "CLUSTER SETSLOT " + s + " IMPORTING " + node_id(from));
    cli(from, "CLUSTER SETSLOT " + s + " MIGRATING " + node_id(to));
}

int ClusterSetup::migrate_keys(int slot, std::uint16_t from, std::uint16_t to, int batch) {
    auto keys =
        cli(from, "CLUSTER GETKEYSINSLOT " + std::to_string(slot) + " " + std::to_string(batch));
    std::istringstream in(keys);
    std::vector<std::string> list;
    std::string k;
    while (std::getline(in, k)) {
        if (!k.empty()) list.push_back(k);
    }
    if (list.empty()) return 0;
    std::string args = "MIGRATE 127.0.0.1 " + std::to_string(to) + " \"\" 0 5000 REPLACE KEYS";
    for (const auto& key : list) args += " '" + key + "'";
    auto out = cli(from, args);
    if (out != "OK") throw std::runtime_error("MIGRATE failed: " + out);
    return static_cast<int>(list.size());
}

void ClusterSetup::finish_migration(int slot, std::uint16_t from, std::uint16_t to) {
    auto s = std::to_string(slot);
    auto target = node_id(to);
    cli(to, "CLUSTER SETSLOT " + s + " NODE " + target);
    cli(from, "CLUSTER SETSLOT " + s + " NODE " + target);
    for (auto p : primary_ports()) {
        if (p != from && p != to) cli(p, "CLUSTER SETSLOT " + s + " NODE " + target);
    }
}

void ClusterSetup::failover(std::uint16_t replica_port) {
    auto out = cli(replica_port, "CLUSTER FAILOVER");
    if (out != "OK") throw std::runtime_error("CLUSTER FAILOVER refused: " + out);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < until) {
        if (cli(replica_port, "ROLE").rfind("master", 0) == 0) {
            wait_ok();
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the replica on " + std::to_string(replica_port) +
                             " did not become a primary in 20 s");
}

void ClusterSetup::kill(std::uint16_t port) {
    int i = index_of(port);
    if (i < 0) throw std::runtime_error("no node on " + std::to_string(port));
    nodes_[static_cast<std::size_t>(i)]->kill();
    dead_[static_cast<std::size_t>(i)] = true;
}

void ClusterSetup::wait_ok(int seconds) const {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    std::string last;
    while (std::chrono::steady_clock::now() < until) {
        bool ok = true;
        for (std::size_t i = 0; i < nodes_.size() && ok; ++i) {
            if (dead_[i]) continue;
            last = cli(nodes_[i]->port(), "CLUSTER INFO");
            ok = last.find("cluster_state:ok") != std::string::npos;
        }
        if (ok) {
            int covered = 0;
            for (const auto& n : parse_nodes(cli(any_live_port(), "CLUSTER NODES"))) {
                int i = index_of(n.port);
                if (n.flags.find("master") == std::string::npos ||
                    n.flags.find("fail") != std::string::npos ||
                    (i >= 0 && dead_[static_cast<std::size_t>(i)])) {
                    continue;
                }
                for (auto [a, b] : n.slots) covered += b - a + 1;
            }
            if (covered == 16384) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the cluster did not reach cluster_state:ok; last CLUSTER INFO:\n" +
                             last);
}

}  // namespace streamfleet::test
