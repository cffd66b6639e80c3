#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/handler_pool.hpp"

using namespace streamfleet::detail;
using namespace std::chrono_literals;

TEST_CASE("every pushed item runs exactly once, from bursts and singles") {
    HandlerPool<int> pool;
    std::mutex m;
    std::multiset<int> seen;
    pool.start(8, [&](int& v) {
        std::lock_guard lock(m);
        seen.insert(v);
    });
    int next = 0;
    for (int round = 0; round < 2000; ++round) {
        std::vector<int> batch;
        int n = round % 7 == 0 ? 50 : 1 + round % 3;
        for (int i = 0; i < n; ++i) batch.push_back(next++);
        pool.push(batch);
        CHECK(batch.empty());
        if (round % 100 == 0) std::this_thread::sleep_for(200us);  // let threads park
    }
    for (int i = 0; i < 500; ++i) {
        {
            std::lock_guard lock(m);
            if (static_cast<int>(seen.size()) == next) break;
        }
        std::this_thread::sleep_for(10ms);
    }
    pool.stop();
    REQUIRE(static_cast<int>(seen.size()) == next);
    for (int i = 0; i < next; ++i) REQUIRE(seen.count(i) == 1);
}

TEST_CASE("a burst of blocking items fans out to every thread") {
    // Spinning must not stop the pool from using all its threads: C items that
    // each wait for all C to be running at once must all get to run.
    constexpr int kThreads = 16;
    HandlerPool<int> pool;
    std::mutex m;
    std::condition_variable cv;
    int running = 0, peak = 0;
    pool.start(kThreads, [&](int&) {
        std::unique_lock lock(m);
        peak = std::max(peak, ++running);
        cv.notify_all();
        cv.wait_for(lock, 10s, [&] { return running == kThreads; });
    });
    // Let every thread park first, so the burst meets a cold pool.
    std::this_thread::sleep_for(50ms);
    std::vector<int> batch(kThreads, 0);
    pool.push(batch);
    {
        std::unique_lock lock(m);
        CHECK(cv.wait_for(lock, 10s, [&] { return running == kThreads; }));
    }
    pool.stop();
    CHECK(peak == kThreads);
}

TEST_CASE("items no thread has taken can be taken back") {
    HandlerPool<int> pool;
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    std::atomic<int> started{0};
    pool.start(1, [&](int&) {
        ++started;
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return release; });
    });
    std::vector<int> batch{1, 2, 3};
    pool.push(batch);
    while (started == 0) std::this_thread::sleep_for(1ms);
    auto back = pool.take_unstarted();
    CHECK(back.size() == 2);
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_all();
    pool.stop();
    CHECK(started == 1);
}
