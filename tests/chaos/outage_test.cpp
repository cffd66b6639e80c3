// Chaos: Redis frozen and killed under a live client and server; every task is
// counted.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::RedisServer;

TEST_CASE("10,000 tasks streamed through a Redis SIGSTOP and a SIGKILL + restart all complete") {
    RedisServer rs({.aof = true});
    std::mutex m;
    std::map<int, int> runs;
    ServerOptions so{.redis = rs.url(), .id = "chaos-worker", .concurrency = 16, .read_block = 200ms,
                     .heartbeat_interval = 200ms, .command_timeout = 1s, .lease = 1500ms,
                     .dead_after = 600ms};
    Server server(so);
    server.handle("q", [&](TaskContext& t) {
        std::lock_guard lock(m);
        ++runs[std::stoi(std::string(t.data()))];
    });
    server.start();
    Client client({.redis = rs.url(), .max_buffered = 20'000, .full_timeout = 60s, .command_timeout = 1s},
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
    while (!complete() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(50ms);
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
