// bench/redis_pipeline: XADD throughput through ONE connection of streamfleet's
// Redis layer, keeping `window` commands in flight (the same in-flight count
// as `redis-benchmark -c 50 -P 16` is 800). Prints one JSON object.
//
// Usage: redis_pipeline --redis URL [--count N] [--window W] [--payload-bytes B]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <string>

#include "redis/connection.hpp"
#include "redis/sync.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"

using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;

namespace {

struct Args {
    std::string url = "redis://127.0.0.1:6379";
    long count = 1'000'000;
    long window = 800;
    long payload = 3;  // "v" .. like redis-benchmark's tiny field value
};

[[noreturn]] void usage(const char* prog) {
    std::fprintf(stderr, "usage: %s --redis URL [--count N] [--window W] [--payload-bytes B]\n",
                 prog);
    std::exit(2);
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        auto need = [&](const char* flag) -> const char* {
            if (std::strcmp(argv[i], flag) != 0) return nullptr;
            if (i + 1 >= argc) usage(argv[0]);
            return argv[++i];
        };
        if (auto v = need("--redis"))
            a.url = v;
        else if (auto v = need("--count"))
            a.count = std::stol(v);
        else if (auto v = need("--window"))
            a.window = std::stol(v);
        else if (auto v = need("--payload-bytes"))
            a.payload = std::stol(v);
        else
            usage(argv[0]);
    }
    if (a.count <= 0 || a.window <= 0 || a.payload < 0) usage(argv[0]);
    return a;
}

// Issues commands from reply callbacks so `window` stay in flight; the
// refills of one read batch leave together at the end of that loop turn.
struct Driver {
    std::shared_ptr<Connection> conn;
    std::string key = "bench:pipeline";
    std::string payload;
    long total = 0, issued = 0, done = 0, failed = 0;
    std::promise<void> finished;

    void issue() {
        ++issued;
        conn->send({"XADD", key, "*", "f", payload}, [this](Result<Reply> r) {
            if (!r) ++failed;
            ++done;
            if (issued < total) issue();
            if (done == total) finished.set_value();
        });
    }
};

}  // namespace

int run(const Args& args);

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "redis_pipeline: %s\n", e.what());
        return 1;
    }
}

int run(const Args& args) {
    auto address = parse_url(args.url).value();
    Runtime rt("sf-bench");
    auto conn = rt.call([&] {
        auto c = Connection::create(
            rt,
            ServerConfig{address.endpoints.front(), address.username, address.password, address.db},
            ConnectionOptions{.command_timeout = std::chrono::seconds(60), .offline_queue = false});
        c->start();
        return c;
    });
    (void)call(rt, conn, {"DEL", "bench:pipeline"}).value();

    Driver d;
    d.conn = conn;
    d.total = args.count;
    d.payload.assign(static_cast<std::size_t>(args.payload), 'v');
    auto fut = d.finished.get_future();
    auto t0 = std::chrono::steady_clock::now();
    rt.post([&] {
        for (long i = 0; i < std::min(args.window, args.count); ++i) d.issue();
    });
    fut.get();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto len = call(rt, conn, {"XLEN", "bench:pipeline"}).value().integer();
    (void)call(rt, conn, {"DEL", "bench:pipeline"}).value();
    rt.call([&] { conn->close(); });

    std::printf(
        "{\"bench\":\"redis_pipeline\",\"command\":\"XADD\",\"count\":%ld,\"window\":%ld,"
        "\"payload_bytes\":%ld,\"seconds\":%.4f,\"ops_per_s\":%.0f,\"failed\":%ld,\"xlen\":%lld}\n",
        args.count, args.window, args.payload, secs, static_cast<double>(args.count) / secs,
        d.failed, len);
    return d.failed == 0 && len == args.count ? 0 : 1;
}
