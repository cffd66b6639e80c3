#include "support/sentinel_setup.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace streamfleet::test {

namespace {

// Where the RESP value starting at `pos` ends, or npos while incomplete.
std::size_t resp_end(const std::string& s, std::size_t pos) {
    auto eol = s.find("\r\n", pos);
    if (pos >= s.size() || eol == std::string::npos) return std::string::npos;
    char type = s[pos];
    if (type == '+' || type == '-' || type == ':') return eol + 2;
    long n = std::stol(s.substr(pos + 1, eol - pos - 1));
    if (type == '$') {
        if (n < 0) return eol + 2;
        auto end = eol + 2 + static_cast<std::size_t>(n) + 2;
        return end <= s.size() ? end : std::string::npos;
    }
    if (type == '*') {
        auto at = eol + 2;
        for (long i = 0; i < n; ++i) {
            at = resp_end(s, at);
            if (at == std::string::npos) return at;
        }
        return at;
    }
    return eol + 2;
}

bool has(const std::string& s, const std::string& what) {
    return s.find(what) != std::string::npos;
}

// "$5\r\nPORT\r\n" as it appears in a reply naming `port`.
std::string bulk(const std::string& v) {
    return "$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
}

}  // namespace

std::string SentinelSetup::raw(std::uint16_t port, const std::string& inline_command) {
    int fd = connect_loopback(port);
    if (fd < 0) return {};
    std::string out;
    std::string cmd = inline_command + "\r\n";
    if (write(fd, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
        char buf[4096];
        ssize_t n;
        while (resp_end(out, 0) == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    close(fd);
    return resp_end(out, 0) == std::string::npos ? std::string() : out;
}

SentinelSetup::SentinelSetup(SentinelSetupOptions options) : options_(std::move(options)) {
    nodes_.push_back(std::make_unique<RedisServer>(RedisServerOptions{.cluster = false}));
    auto primary = std::to_string(nodes_[0]->port());
    nodes_.push_back(std::make_unique<RedisServer>(
        RedisServerOptions{.extra_config = {"replicaof 127.0.0.1 " + primary}, .cluster = false}));
    // The replica must be in sync before the sentinels first ask the primary
    // (INFO), or they learn of it only ten seconds later.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!has(raw(nodes_[1]->port(), "INFO replication"), "master_link_status:up")) {
        if (std::chrono::steady_clock::now() > until)
            throw std::runtime_error("the replica did not sync with the primary in 20 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto& name = options_.master_name;
    for (int i = 0; i < 3; ++i) {
        sentinels_.push_back(std::make_unique<RedisServer>(RedisServerOptions{
            .extra_config = {"sentinel monitor " + name + " 127.0.0.1 " + primary + " 2",
                             "sentinel down-after-milliseconds " + name + " " +
                                 std::to_string(options_.down_after_ms),
                             "sentinel failover-timeout " + name + " " +
                                 std::to_string(options_.failover_timeout_ms),
                             "sentinel parallel-syncs " + name + " 1"},
            .cluster = false,
            .sentinel = true}));
    }
    wait_agreed(0);
    wait_replica_known(std::chrono::seconds(30));
}

SentinelSetup::~SentinelSetup() {
    // Sentinels first, so none starts a failover while the nodes go.
    sentinels_.clear();
    nodes_.clear();
}

std::string SentinelSetup::url() const {
    std::string out = "redis-sentinel://";
    for (std::size_t i = 0; i < sentinels_.size(); ++i) {
        if (i) out += ',';
        out += "127.0.0.1:" + std::to_string(sentinels_[i]->port());
    }
    return out + "/" + options_.master_name;
}

int SentinelSetup::master() const {
    for (const auto& s : sentinels_) {
        if (!s->running()) continue;
        auto r = raw(s->port(), "SENTINEL get-master-addr-by-name " + options_.master_name);
        for (int i = 0; i < 2; ++i) {
            if (has(r, bulk(std::to_string(nodes_[static_cast<std::size_t>(i)]->port())))) {
                return i;
            }
        }
    }
    throw std::runtime_error("no sentinel names a master");
}

void SentinelSetup::wait_agreed(int index, std::chrono::milliseconds limit) {
    auto port = nodes_.at(static_cast<std::size_t>(index))->port();
    auto until = std::chrono::steady_clock::now() + limit;
    std::string last;
    while (std::chrono::steady_clock::now() < until) {
        bool ok = has(raw(port, "ROLE"), bulk("master"));
        for (const auto& s : sentinels_) {
            if (!ok || !s->running()) continue;
            last = raw(s->port(), "SENTINEL get-master-addr-by-name " + options_.master_name);
            ok = has(last, bulk(std::to_string(port))) &&
                 has(raw(s->port(), "SENTINEL master " + options_.master_name),
                     bulk("num-other-sentinels") + bulk("2"));
        }
        if (ok) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the sentinels did not agree on node " + std::to_string(index) +
                             " (port " + std::to_string(port) + ") as master; last answer: " +
                             last + "\nsentinel log:\n" + sentinels_[0]->log_tail());
}

// SENTINEL FAILOVER needs a replica the sentinels know (from the master's INFO).
void SentinelSetup::wait_replica_known(std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        bool ok = true;
        for (const auto& s : sentinels_) {
            auto r = raw(s->port(), "SENTINEL master " + options_.master_name);
            ok = ok && has(r, bulk("num-slaves") + bulk("1"));
        }
        if (ok) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the sentinels did not learn of the replica");
}

int SentinelSetup::failover(std::chrono::milliseconds limit) {
    int from = master();
    int to = 1 - from;
    auto until = std::chrono::steady_clock::now() + limit;
    std::uint16_t asked = 0;
    for (const auto& s : sentinels_) {
        if (s->running()) {
            asked = s->port();
            break;
        }
    }
    // Refused (-INPROG, -NOGOODSLAVE) while a previous failover settles.
    while (!has(raw(asked, "SENTINEL FAILOVER " + options_.master_name), "+OK")) {
        if (std::chrono::steady_clock::now() > until)
            throw std::runtime_error("SENTINEL FAILOVER was refused until the limit");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    wait_agreed(to, limit);
    // The sentinels turn the old master into a replica only after their next
    // INFO round; until then it still takes writes the new master never sees
    // (Redis's loss window, which a client that has not yet heard of the
    // switch may hit). Saying so at once is what they would say, and draws a
    // clean line for tests counting what was accepted after the failover.
    raw(nodes_.at(static_cast<std::size_t>(from))->port(),
        "REPLICAOF 127.0.0.1 " + std::to_string(nodes_.at(static_cast<std::size_t>(to))->port()));
    return to;
}

void SentinelSetup::revive(int index, std::chrono::milliseconds limit) {
    auto& node = *nodes_.at(static_cast<std::size_t>(index));
    node.restart();
    auto master_port = std::to_string(nodes_.at(static_cast<std::size_t>(1 - index))->port());
    // The sentinels would reconfigure it too, but only after their next INFO
    // round (up to 10 s); saying so at once is what they would say.
    raw(node.port(), "REPLICAOF 127.0.0.1 " + master_port);
    auto until = std::chrono::steady_clock::now() + limit;
    while (true) {
        auto info = raw(node.port(), "INFO replication");
        if (has(info, "master_port:" + master_port) && has(info, "master_link_status:up")) return;
        if (std::chrono::steady_clock::now() > until)
            throw std::runtime_error("the revived node did not become a replica in sync: " + info);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

int SentinelSetup::kill_master(std::chrono::milliseconds limit) {
    int from = master();
    nodes_[static_cast<std::size_t>(from)]->kill();
    wait_agreed(1 - from, limit);
    return 1 - from;
}

}  // namespace streamfleet::test
