// streamfleet demo (README command 1).
//
// Until the Client/Server issue lands, the demo shows the layer everything
// else stands on: it connects to Redis, pipelines a burst of XADDs through one
// connection, reads them back, then has Redis drop the connection and shows the
// reconnect. It reaches into lib/ for that layer, which is why it links the
// internal static library; later examples use only the public headers.
//
// Usage: streamfleet-demo --redis redis://127.0.0.1:6379

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <thread>

#include "redis/connection.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/streamfleet.hpp"

using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
    std::string url = "redis://127.0.0.1:6379";
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--redis") == 0 && i + 1 < argc) url = argv[++i];
        else {
            std::fprintf(stderr, "usage: %s --redis URL\n", argv[0]);
            return 2;
        }
    }
    try {
        auto address = parse_url(url).value();
        std::printf("streamfleet %s demo against %s\n", std::string(streamfleet::version()).c_str(),
                    address.redacted().c_str());

        Runtime rt("sf-demo");
        auto topo = rt.call([&] {
            auto t = make_topology(rt, address, ConnectionOptions{.client_name = "sf-demo"}).value();
            t->on_state([](ConnState s, const Error* why) {
                std::printf("  [state] %s%s%s\n", std::string(to_string(s)).c_str(),
                            why ? ": " : "", why ? why->message().c_str() : "");
            });
            t->start();
            return t;
        });

        std::printf("1. connect: PING -> %s\n", std::string(call(rt, *topo, {"PING"}).value().str()).c_str());
        (void)call(rt, *topo, {"DEL", "demo:stream"}).value();

        constexpr int kTasks = 100'000;
        std::promise<int> done;
        auto t0 = std::chrono::steady_clock::now();
        rt.post([&] {
            auto left = std::make_shared<int>(kTasks);
            auto failed = std::make_shared<int>(0);
            for (int i = 0; i < kTasks; ++i) {
                auto n = std::to_string(i);
                topo->send(Route{"demo:stream"}, {"XADD", "demo:stream", "*", "n", n},
                           [&done, left, failed](Result<Reply> r) {
                               if (!r) ++*failed;
                               if (--*left == 0) done.set_value(*failed);
                           });
            }
        });
        int failed = done.get_future().get();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        auto len = call(rt, *topo, {"XLEN", "demo:stream"}).value().integer();
        std::printf("2. pipeline: %d XADDs in %.3f s (%.0f/s) from one connection, %d failed, XLEN=%lld\n",
                    kTasks, secs, kTasks / secs, failed, len);
        auto last = call(rt, *topo, {"XREVRANGE", "demo:stream", "+", "-", "COUNT", "1"}).value();
        std::printf("   last entry %s: n=%s\n", std::string(last[0][0].str()).c_str(),
                    std::string(last[0][1][1].str()).c_str());

        std::printf("3. reconnect: asking Redis to drop our connection (CLIENT KILL)\n");
        auto admin = rt.call([&] { return topo->dedicated(Route{}, "admin"); });
        auto killed = call(rt, admin, {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).value();
        std::printf("   CLIENT KILL closed %lld connection(s)\n", killed.integer());
        Result<Reply> pong = Error(errc::timeout, "not tried");
        for (int i = 0; i < 100; ++i) {
            pong = call(rt, *topo, {"PING"});
            if (pong.ok()) break;
            std::this_thread::sleep_for(50ms);
        }
        std::printf("   after reconnect: PING -> %s\n",
                    pong.ok() ? std::string(pong->str()).c_str() : pong.error().message().c_str());
        (void)call(rt, *topo, {"DEL", "demo:stream"});
        rt.call([&] {
            admin->close();
            topo->close();
        });
        std::printf("done\n");
        return pong.ok() && failed == 0 && len == kTasks ? 0 : 1;
    } catch (const streamfleet::Error& e) {
        std::fprintf(stderr, "demo failed: %s\n", e.what());
        return 1;
    }
}
