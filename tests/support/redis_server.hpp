#pragma once

// RedisServer: a real redis-server for one test, on a free loopback port in a
// fresh temp dir. RAII: the destructor kills it and removes the dir; the child
// also gets PR_SET_PDEATHSIG, so it dies with the test process even on a crash.
// (PDEATHSIG follows the *thread* that started it: start and restart servers
// from the test's main thread.)

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace streamfleet::test {

struct RedisServerOptions {
    /// appendonly yes + appendfsync always: every acknowledged write survives SIGKILL.
    bool aof = false;
    /// requirepass for the default user (empty: no password).
    std::string password{};
    /// An extra ACL user with full access, when acl_user is not empty.
    std::string acl_user{};
    std::string acl_password{};
    /// Also listen on a unix socket in the temp dir.
    bool unix_socket = false;
    /// More redis.conf lines.
    std::vector<std::string> extra_config{};
    /// A one-node Redis Cluster: cluster-enabled, every slot assigned to this
    /// node, its bus on a free port of its own. Any command whose keys span
    /// hash slots then fails with CROSSSLOT, which is what the cluster runs
    /// of the suite check. Defaults to on when SF_TEST_REDIS=cluster.
    bool cluster = cluster_by_default();
    /// Runs `redis-server FILE --sentinel`; extra_config carries the
    /// `sentinel ...` lines (see sentinel_setup.hpp). Never a cluster.
    bool sentinel = false;

    static bool cluster_by_default();
};

/// A socket connected to 127.0.0.1:`port` whose reads give up after a
/// second, or -1. For talking raw RESP to a server the test started.
int connect_loopback(std::uint16_t port);

class RedisServer {
public:
    explicit RedisServer(RedisServerOptions options = {});
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    /// redis://127.0.0.1:PORT, with the default user's password when one is set.
    std::string url() const;
    /// redis://127.0.0.1:PORT without credentials.
    std::string url_without_auth() const;
    /// unix:///dir/redis.sock (needs unix_socket).
    std::string unix_url() const;

    std::uint16_t port() const { return port_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }

    /// SIGTERM and wait: Redis saves an RDB snapshot first, so data survives restart().
    void stop();
    /// SIGKILL and wait: only what AOF (appendfsync always) wrote survives.
    void kill();
    /// SIGSTOP: the process stays alive but answers nothing.
    void pause();
    /// SIGCONT.
    void resume();
    /// Stops the server if it runs, then starts it again on the same port and
    /// dir, so it loads the data it had.
    void restart();

    /// The server's log, for failure messages.
    std::string log_tail() const;

private:
    void write_config() const;
    void spawn();
    void wait_ready();
    void wait_cluster_ok();
    void reap(int sig);

    RedisServerOptions options_;
    std::string dir_;
    std::uint16_t port_ = 0;
    std::uint16_t bus_port_ = 0;  // cluster bus (cluster mode only)
    pid_t pid_ = -1;
};

/// A TCP port on 127.0.0.1 that nothing listens on right now.
std::uint16_t free_port();

}  // namespace streamfleet::test
