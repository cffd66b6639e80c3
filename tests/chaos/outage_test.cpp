// Chaos: Redis frozen and killed under a live client and server; every task is
// counted.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::RedisServer;

TEST_CASE("10,000 tasks streamed through a Redis SIGSTOP and a SIGKILL + restart all complete") {
    RedisServer rs({.aof = true});
    std::mutex m;
    std::map<int, int> runs;
    ServerOptions so{.redis = rs.url(),
                     .id = "chaos-worker",
                     .concurrency = 16,
                     .read_block = 200ms,
                     .heartbeat_interval = 200ms,
                     .command_timeout = 1s,
                     .lease = 1500ms,
                     .dead_after = 600ms};
    Server server(so);
    server.handle("q", [&](TaskContext& t) {
        std::lock_guard lock(m);
        ++runs[std::stoi(std::string(t.data()))];
    });
    server.start();
    Client client(
        {.redis = rs.url(), .max_buffered = 20'000, .full_timeout = 60s, .command_timeout = 1s},
        {"q"});

    constexpr int kTasks = 10'000;
    std::atomic<int> sent{0};
    std::thread producer([&] {
        for (int i = 0; i < kTasks; ++i) {
            client.enqueue("q", std::to_string(i));
            ++sent;
            if (i % 100 == 0) std::this_thread::sleep_for(10ms);  // a stream, not one burst
        }
    });
    auto wait_sent = [&](int n) {
        while (sent < n) std::this_thread::sleep_for(5ms);
    };
    wait_sent(2000);
    rs.pause();
    std::this_thread::sleep_for(2s);  // frozen: client buffers, server keeps outcomes
    rs.resume();
    wait_sent(6000);
    rs.kill();  // appendfsync always: every confirmed write survives
    std::this_thread::sleep_for(500ms);
    rs.restart();
    producer.join();

    auto complete = [&] {
        std::lock_guard lock(m);
        return static_cast<int>(runs.size()) == kTasks;
    };
    auto until = std::chrono::steady_clock::now() + 120s;
    while (!complete() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(50ms);
    REQUIRE(client.close(30s));
    server.shutdown(5s);
    std::lock_guard lock(m);
    int duplicates = 0;
    for (auto& [_, n] : runs) duplicates += n - 1;
    MESSAGE("lost: " << kTasks - static_cast<int>(runs.size()) << ", duplicates: " << duplicates);
    CHECK(static_cast<int>(runs.size()) == kTasks);  // nothing lost
    for (int i = 0; i < kTasks; ++i) {
        if (!runs.count(i)) {
            FAIL_CHECK("task " << i << " never ran");
            break;
        }
    }
}

TEST_CASE("a client process SIGKILLed during an outage: its spool is sent by the next one") {
    RedisServer rs;
    std::string dir = rs.dir(), spool = dir + "/cli.spool", ids = dir + "/ids";
    rs.kill();  // Redis is down for the whole first run
    std::string cmd = "seq 1 200 | " + streamfleet::test::cli_path() + " enqueue --redis " +
                      rs.url() + " --queue q --lines --spool " + spool + " > " + ids;
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
        _exit(127);
    }
    setpgid(pid, pid);
    auto count_ids = [&] {
        std::ifstream in(ids);
        std::string l;
        int n = 0;
        while (std::getline(in, l)) ++n;
        return n;
    };
    REQUIRE(
        streamfleet::test::eventually([&] { return count_ids() == 200; }, 30s));  // all accepted
    ::kill(-pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);

    rs.restart();
    std::string replay = "printf '' | " + streamfleet::test::cli_path() + " enqueue --redis " +
                         rs.url() + " --queue q --lines --spool " + spool + " --timeout-ms 30000";
    REQUIRE(std::system(replay.c_str()) == 0);
    streamfleet::test::TestConn c(rs.url());
    auto entries = c.cmd({"XRANGE", "streamfleet:{q}", "-", "+"}).value();
    REQUIRE(entries.size() == 200);
    for (int i = 0; i < 200; ++i) {
        CHECK(streamfleet::test::entry_fields(entries[i])["data"] == std::to_string(i + 1));
    }
}
