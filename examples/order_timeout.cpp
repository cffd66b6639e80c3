// Order timeout, the delay-queue classic: every new order schedules its own
// auto-cancel task; paying cancels that task, so only unpaid orders are
// auto-canceled when the delay is up. Delays are short here so it runs fast.
//
//   order_timeout --redis redis://127.0.0.1:6379
//
// Exits 0 when the paid order stays paid and the unpaid one is auto-canceled.

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// The shop's own order book (a database in real life).
struct Orders {
    std::mutex m;
    std::map<std::string, std::string> status;  // order id -> "open" | "paid" | "auto-canceled"

    void set(const std::string& id, const std::string& s) {
        std::lock_guard lock(m);
        status[id] = s;
    }
    std::string get(const std::string& id) {
        std::lock_guard lock(m);
        return status[id];
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string redis =
        argc == 3 && std::strcmp(argv[1], "--redis") == 0 ? argv[2] : "redis://127.0.0.1:6379";
    try {
        Orders orders;
        streamfleet::Server server({.redis = redis, .id = "order-timeouts", .concurrency = 2});
        server.handle("order-timeouts", [&](streamfleet::TaskContext& task) {
            std::string order(task.data());
            // Only an order still open is canceled: a payment that raced the
            // timer and won is left alone.
            if (orders.get(order) == "open") orders.set(order, "auto-canceled");
            std::printf("timeout fired for %s: now %s\n", order.c_str(), orders.get(order).c_str());
        });
        server.start();

        streamfleet::Client client({.redis = redis}, {"order-timeouts"});
        // Two orders, each with an auto-cancel due in 800 ms.
        std::map<std::string, streamfleet::TaskHandle> timeouts;
        for (std::string order : {"order-1", "order-2"}) {
            orders.set(order, "open");
            timeouts.emplace(order,
                             client.enqueue_tracked("order-timeouts", order, {.delay = 800ms}));
        }

        // order-1 is paid in time: the payment cancels its timeout task.
        std::this_thread::sleep_for(200ms);
        orders.set("order-1", "paid");
        auto what = client.cancel("order-timeouts", timeouts.at("order-1").id());
        std::printf("paid order-1; its timeout task was %s and is canceled\n",
                    std::string(streamfleet::to_string(what)).c_str());

        // order-2 is never paid: its timeout fires.
        for (auto& [order, h] : timeouts) {
            auto out = h.wait_for(10s);
            std::printf(
                "%s: timeout task %s\n", order.c_str(),
                out ? std::string(streamfleet::to_string(out->status)).c_str() : "did not finish");
        }
        bool ok = orders.get("order-1") == "paid" && orders.get("order-2") == "auto-canceled" &&
                  timeouts.at("order-1").wait_for(0ms)->status == streamfleet::TaskStatus::canceled;
        client.close();
        server.shutdown();
        std::printf("order-1 %s, order-2 %s\n", orders.get("order-1").c_str(),
                    orders.get("order-2").c_str());
        return ok ? 0 : 1;
    } catch (const streamfleet::Error& e) {
        std::fprintf(stderr, "order_timeout: %s\n", e.what());
        return 1;
    }
}
