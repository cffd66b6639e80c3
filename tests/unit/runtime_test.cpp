#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/runtime.hpp"
#include "streamfleet/errors.hpp"

using namespace streamfleet::detail;

TEST_CASE("posted work runs on the loop thread, in order, from many threads") {
    Runtime rt;
    std::vector<int> seen;  // touched only on the loop thread
    std::vector<std::thread> producers;
    std::atomic<int> off_loop{0};
    for (int t = 0; t < 4; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < 1000; ++i) {
                REQUIRE(rt.post([&, t, i] {
                    if (!rt.in_loop_thread()) ++off_loop;
                    seen.push_back(t * 1000 + i);
                }));
            }
        });
    }
    for (auto& p : producers) p.join();
    auto seen_copy = rt.call([&] { return seen; });
    CHECK(off_loop == 0);
    REQUIRE(seen_copy.size() == 4000);
    // Each producer's own posts keep their order.
    for (int t = 0; t < 4; ++t) {
        int last = -1;
        for (int v : seen_copy) {
            if (v / 1000 != t) continue;
            CHECK(v % 1000 == last + 1);
            last = v % 1000;
        }
    }
}

TEST_CASE("call returns values and rethrows exceptions") {
    Runtime rt;
    CHECK(rt.call([] { return 41 + 1; }) == 42);
    CHECK_THROWS_AS(rt.call([]() -> int { throw std::runtime_error("boom"); }), std::runtime_error);
}

TEST_CASE("stop runs hooks newest first, closes handles, refuses later posts") {
    auto rt = std::make_unique<Runtime>();
    std::vector<int> order;
    int fired = 0;
    rt->call([&] {
        rt->add_stop_hook([&] { order.push_back(1); });
        auto id = rt->add_stop_hook([&] { order.push_back(99); });
        rt->add_stop_hook([&] { order.push_back(2); });
        rt->remove_stop_hook(id);
        // A timer that would fire long after stop: the stop hook must close it.
        auto* timer = new Timer(rt->loop());
        timer->start(60'000, [&] { ++fired; });
        rt->add_stop_hook([timer] { delete timer; });
    });
    rt->stop();
    CHECK(order == std::vector<int>{2, 1});
    CHECK(fired == 0);
    CHECK_FALSE(rt->post([] {}));
    CHECK_THROWS_AS(rt->call([] { return 1; }), streamfleet::ClosedError);
    rt->stop();  // idempotent
}

TEST_CASE("timers fire once and TurnEnd coalesces arms within one turn") {
    Runtime rt;
    std::atomic<int> timer_calls{0};
    std::atomic<int> turn_calls{0};
    TurnEnd* turn = nullptr;
    Timer* timer = nullptr;
    rt.call([&] {
        timer = new Timer(rt.loop());
        timer->start(5, [&] { ++timer_calls; });
        turn = new TurnEnd(rt.loop(), [&] { ++turn_calls; });
        for (int i = 0; i < 10; ++i) turn->arm();
    });
    for (int i = 0; i < 200 && timer_calls == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    rt.call([] {});  // one more turn
    CHECK(timer_calls == 1);
    CHECK(turn_calls == 1);
    rt.call([&] {
        delete timer;
        delete turn;
    });
}
