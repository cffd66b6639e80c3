// Bad input and lost requests, against a real redis-server: entries and delayed members no script
// can take as they are, time options that overflow, cancels that must stick, and a unique-key
// claim whose reply was lost. Each case counts tasks one by one.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/worker_options.hpp"
#include "support/tally.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::server_opts;
using streamfleet::test::wall_ms;
using streamfleet::test::run_captured;
using streamfleet::test::TestConn;

namespace {

// Counts runs per task payload.
using Runs = streamfleet::test::Tally;

constexpr auto kMaxMs = std::chrono::milliseconds(std::numeric_limits<std::int64_t>::max());

// Every entry of a stream as a field → value map, in order.
std::vector<std::map<std::string, std::string>> entries(TestConn& c, const std::string& key) {
    auto r = c.cmd({"XRANGE", key, "-", "+"}).value();
    std::vector<std::map<std::string, std::string>> out;
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(streamfleet::test::entry_fields(r[i]));
    return out;
}

long long integer(TestConn& c, std::vector<std::string> argv) {
    return c.cmd(std::move(argv)).value().integer();
}

}  // namespace

TEST_CASE("an entry with 10,000 fields is dead-lettered once; the tasks beside it run") {
    RedisServer rs;
    TestConn c(rs.url());
    Client client({.redis = rs.url()}, {"jobs"});
    for (int i = 0; i < 5; ++i) client.enqueue("jobs", "before" + std::to_string(i));
    // Malformed (no task fields at all) and far wider than a Lua call can unpack.
    std::vector<std::string> xadd{"XADD", "streamfleet:{jobs}", "*"};
    for (int i = 0; i < 10'000; ++i) {
        xadd.push_back("f" + std::to_string(i));
        xadd.push_back("v" + std::to_string(i));
    }
    auto wide_id = std::string(c.cmd(xadd).value().str());
    for (int i = 0; i < 5; ++i) client.enqueue("jobs", "after" + std::to_string(i));

    Runs runs;
    Server server(server_opts(rs, "w1", 4));
    server.handle("jobs", [&](TaskContext& t) { runs.add(t.data()); });
    server.start();
    REQUIRE(eventually([&] { return server.stats().succeeded == 10; }));
    REQUIRE(eventually([&] { return integer(c, {"XLEN", "streamfleet:{jobs}:dead"}) == 1; }, 10s));
    for (const auto& [data, n] : runs.snapshot()) {
        CAPTURE(data);
        CHECK(n == 1);
    }
    CHECK(runs.snapshot().size() == 10);
    auto dead = entries(c, "streamfleet:{jobs}:dead");
    REQUIRE(dead.size() == 1);
    CHECK(dead[0]["f0"] == "v0");
    CHECK(dead[0].size() < 2'000);  // a bounded prefix, plus x_error
    CAPTURE(dead[0]["x_error"]);
    CHECK(dead[0]["x_error"].find("malformed entry") != std::string::npos);
    CHECK(dead[0]["x_error"].find("10000 fields") != std::string::npos);
    // Gone from the stream and the PEL: never delivered again.
    REQUIRE(eventually([&] {
        return c.cmd({"XPENDING", "streamfleet:{jobs}", "streamfleet-server"})
                   .value()[0]
                   .integer() == 0;
    }));
    CHECK(c.cmd({"XRANGE", "streamfleet:{jobs}", wide_id, wide_id}).value().size() == 0);
    CHECK(server.stats().malformed == 1);
    server.shutdown(5s);
}

TEST_CASE("bad members of P{Q}:delayed are dead-lettered with their bytes; the due tasks run") {
    RedisServer rs;
    TestConn c(rs.url());
    Client client({.redis = rs.url()}, {"jobs"});
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 20; ++i) {
        handles.push_back(
            client.enqueue_tracked("jobs", "t" + std::to_string(i), {.delay = 300ms}));
    }
    // Due before all of them: not msgpack; one msgpack array of three integers (odd, not strings);
    // a msgpack string followed by trailing bytes.
    const std::string garbage[] = {std::string("not msgpack \xc1", 13), "\x93\x01\x02\x03",
                                   std::string("\xa1x\xa1y", 4)};
    auto due = std::to_string(wall_ms() - 1000);
    for (const auto& g : garbage) c.cmd({"ZADD", "streamfleet:{jobs}:delayed", due, g}).value();

    Runs runs;
    Server server(server_opts(rs, "w1", 8));
    server.handle("jobs", [&](TaskContext& t) { runs.add(t.data()); });
    server.start();
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    auto counted = runs.snapshot();
    CHECK(counted.size() == 20);
    for (const auto& [data, n] : counted) {
        CAPTURE(data);
        CHECK(n == 1);
    }
    auto dead = entries(c, "streamfleet:{jobs}:dead");
    REQUIRE(dead.size() == 3);
    std::set<std::string> raw;
    for (auto& d : dead) {
        raw.insert(d["x_raw"]);
        CAPTURE(d["x_error"]);
        CHECK(d["x_error"].starts_with("malformed delayed member: "));
    }
    CHECK(raw == std::set<std::string>(std::begin(garbage), std::end(garbage)));
    CHECK(integer(c, {"ZCARD", "streamfleet:{jobs}:delayed"}) == 0);
    server.shutdown(5s);
}

TEST_CASE("time options that overflow are refused with the option named") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"q"});
    const std::pair<const char*, TaskOptions> cases[] = {
        {"delay", {.delay = kMaxMs}},
        {"expires_in", {.expires_in = kMaxMs}},
        {"retry_delay", {.retry_delay = kMaxMs}},
        {"backoff_max", {.backoff = Backoff::exponential, .backoff_max = kMaxMs}},
        {"run_timeout", {.run_timeout = kMaxMs}},
        {"retention", {.retention = kMaxMs}},
        {"unique_ttl", {.unique_key = "k", .unique_ttl = kMaxMs}},
        // Just past 9999-12-31 counted from now.
        {"delay", {.delay = std::chrono::milliseconds(253'402'300'800'000 - wall_ms())}},
        {"expires_in", {.expires_in = -1ms}},
    };
    for (const auto& [field, opts] : cases) {
        CAPTURE(field);
        CHECK_THROWS_WITH_AS(client.enqueue("q", "x", opts), doctest::Contains(field),
                             InvalidArgument);
    }
    TestConn c(rs.url());
    CHECK(integer(c, {"EXISTS", "streamfleet:{q}", "streamfleet:{q}:delayed"}) == 0);
    CHECK(integer(c, {"EXISTS", "streamfleet:{q}:unique:k"}) == 0);

    // A long but representable delay is fine, and waits.
    auto id = client.enqueue("q", "later", {.delay = std::chrono::hours(24 * 365 * 100)});
    CHECK(client.get("q", id).state == TaskState::delayed);
}

TEST_CASE("a retry_delay of INT64_MAX from another writer waits instead of running at once") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<int> runs{0};
    Server server(server_opts(rs, "w1", 8));
    server.handle("jobs", [&](TaskContext&) -> Outcome {
        ++runs;
        return Outcome::failure("again");
    });
    server.start();
    // As a client that does not validate would write it (the v1 fields only).
    c.cmd({"XADD",
           "streamfleet:{jobs}",
           "*",
           "enc_version",
           "1",
           "id",
           "foreign-1",
           "client_id",
           "c",
           "data",
           "x",
           "max_retries",
           "3",
           "expires_ts",
           "0",
           "retry_delay",
           "9223372036854775807",
           "send_notif",
           "0",
           "retries",
           "0"})
        .value();
    REQUIRE(eventually([&] { return integer(c, {"ZCARD", "streamfleet:{jobs}:delayed"}) == 1; }));
    auto r = c.cmd({"ZRANGE", "streamfleet:{jobs}:delayed", "0", "0", "WITHSCORES"}).value();
    auto score = std::stoll(std::string(r[1].str()));
    CHECK(score > wall_ms() + 1000LL * 3600 * 24 * 365 * 1000);  // far in the future
    server.shutdown(5s);
    CHECK(runs == 1);
}

TEST_CASE("CLI: time flags past year 9999 (or past what --at can hold) are usage errors") {
    RedisServer rs;
    auto dir = rs.dir();
    const std::string base =
        streamfleet::test::cli_path() + " enqueue --redis " + rs.url() + " --queue q --data x ";
    const std::pair<std::string, const char*> cases[] = {
        {"--delay-ms 9223372036854775807", "--delay-ms"},
        {"--delay-ms 253402300799999", "--delay-ms"},
        {"--expires-in-ms 9223372036854775807", "--expires-in-ms"},
        {"--retry-delay-ms 9223372036854775807", "--retry-delay-ms"},
        {"--backoff-max-ms 9223372036854775807", "--backoff-max-ms"},
        {"--run-timeout-ms 9223372036854775807", "--run-timeout-ms"},
        {"--unique-key k --unique-ttl-ms 9223372036854775807", "--unique-ttl-ms"},
        {"--at 9300000000000", "--at"},  // year 2264
        {"--at 253402300800000", "--at"},
    };
    for (const auto& [flags, names] : cases) {
        CAPTURE(flags);
        auto r = run_captured(base + flags, dir);
        CHECK(r.code == 2);
        CAPTURE(r.err);
        CHECK(r.err.find(names) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    TestConn c(rs.url());
    CHECK(integer(c, {"EXISTS", "streamfleet:{q}", "streamfleet:{q}:delayed"}) == 0);
    // An --at in range still schedules.
    auto ok = run_captured(base + "--at " + std::to_string(wall_ms() + 3'600'000), dir);
    CHECK(ok.code == 0);
    CHECK(integer(c, {"ZCARD", "streamfleet:{q}:delayed"}) == 1);
}

TEST_CASE("a cancel sticks: a task canceled around a failed run never runs after the ack") {
    RedisServer rs;
    constexpr int kTasks = 120;
    std::mutex m;
    std::condition_variable cv;
    std::map<std::string, int> runs;       // by task id
    std::map<std::string, int> after_ack;  // runs that started once its cancel had returned
    std::map<std::string, int> again;      // of those, runs of a later retry than the one caught
    std::set<std::string> acked;
    std::deque<std::string> failing;  // first runs, about to fail: cancel these now
    std::vector<std::string> late;    // what the runs after an ack saw
    std::map<std::string, CancelResult> result;
    Server server(server_opts(rs, "w1", 8));
    server.handle("jobs", [&](TaskContext& t) -> Outcome {
        std::string id = t.id();
        {
            std::unique_lock lock(m);
            if (acked.count(id)) {
                // Retries 0 and 1 may be the run the cancel caught (the test waits for the first
                // to start; the second waits for the ack): only a later one is a run *again*.
                if (t.retries() >= 2) ++again[id];
                ++after_ack[id];
                late.push_back("retries " + std::to_string(t.retries()) + ", deliveries " +
                               std::to_string(t.deliveries()) + ", canceled " +
                               std::to_string(t.canceled()) + ", result " +
                               std::to_string(static_cast<int>(result[id])));
            }
            if (++runs[id] == 1) {
                failing.push_back(id);
                cv.notify_all();
            } else {
                // A retry that started before the cancel returned: it is still running when the
                // cancel comes, so the task cannot use up its retries before it is canceled.
                cv.wait_for(lock, 20s, [&] { return acked.count(id) > 0; });
            }
        }
        // The handler fails around the time the cancel arrives, ignoring its token as a handler
        // that does not poll it would: the run's end and the cancel race.
        std::this_thread::sleep_for(std::chrono::microseconds(std::hash<std::string>{}(id) % 3000));
        return Outcome::failure("failed");
    });
    server.start();
    Client client({.redis = rs.url()}, {"jobs"});
    std::map<std::string, TaskHandle> handles;
    for (int i = 0; i < kTasks; ++i) {
        auto h = client.enqueue_tracked("jobs", "t", {.max_retries = 3});
        handles.emplace(h.id(), std::move(h));
    }
    std::map<CancelResult, int> results;
    for (int done = 0; done < kTasks; ++done) {
        std::string id;
        {
            std::unique_lock lock(m);
            REQUIRE(cv.wait_for(lock, 20s, [&] { return !failing.empty(); }));
            id = failing.front();
            failing.pop_front();
        }
        auto r = client.cancel("jobs", id);
        ++results[r];
        std::lock_guard lock(m);
        acked.insert(id);
        result[id] = r;
        cv.notify_all();
    }
    MESSAGE("cancel results: active " << results[CancelResult::active] << ", ready "
                                      << results[CancelResult::ready] << ", finished "
                                      << results[CancelResult::finished]);
    std::map<TaskStatus, int> statuses;
    for (auto& [id, h] : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        ++statuses[out->status];
        CAPTURE(id);
        CHECK(out->status == TaskStatus::canceled);
        CHECK(client.get("jobs", id).state == TaskState::canceled);
    }
    std::lock_guard lock(m);
    int lost = 0, started_late = 0;
    for (const auto& [id, n] : again) lost += n > 0;
    for (const auto& [id, n] : after_ack) started_late += n > 0;
    MESSAGE("tasks run again after their cancel returned: " << lost << " of " << kTasks);
    // The delivery a cancel caught in flight (read by the server just before the cancel, its
    // handler starting a moment after cancel() returned) still starts, with its token fired at
    // once; its outcome is canceled all the same. Reported, not counted as a run again.
    MESSAGE("runs of the caught delivery that started after the ack: " << started_late);
    for (const auto& l : late) MESSAGE("a run after the ack: " << l);
    CHECK(lost == 0);
    CHECK(statuses[TaskStatus::canceled] == kTasks);
    server.shutdown(5s);
}

TEST_CASE("a cancel sticks across a crash: the task is not run again by the server that takes it") {
    RedisServer rs;
    TestConn c(rs.url());
    Client client({.redis = rs.url()}, {"jobs"});
    auto h = client.enqueue_tracked("jobs", "slow");
    // A worker process that holds the task, frozen so it never hears the cancel, then killed.
    pid_t worker = streamfleet::test::spawn_worker("--redis " + rs.url() +
                                                   " --queue jobs --id crashy --exec 'sleep 60'");
    REQUIRE(eventually([&] { return client.get("jobs", h.id()).state == TaskState::active; }));
    ::kill(-worker, SIGSTOP);
    CHECK(client.cancel("jobs", h.id()) == CancelResult::active);
    streamfleet::test::kill_group(worker, SIGKILL);
    // Started after the cancel: only the record can tell it.
    std::this_thread::sleep_for(5500ms);  // past the control listener's replay window
    std::atomic<int> runs{0};
    Server server(server_opts(rs, "w2", 8));
    server.handle("jobs", [&](TaskContext&) { ++runs; });
    server.start();
    auto out = h.wait_for(30s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::canceled);
    CHECK(runs == 0);
    CHECK(client.get("jobs", h.id()).state == TaskState::canceled);
    server.shutdown(5s);
}

TEST_CASE(
    "a unique-key claim whose reply was lost is resent for the same task: no phantom holder") {
    RedisServer rs;
    TestConn c(rs.url());
    Client client({.redis = rs.url(), .command_timeout = 300ms}, {"q"});
    const TaskOptions opts{.unique_key = "k", .unique_ttl = 60s};
    // Connected, and the claim script cached (a claim of another key), so the claim below is
    // written at once as EVALSHA, runs when Redis wakes, and only its reply is lost.
    client.enqueue("q", "warm", {.unique_key = "warm", .unique_ttl = 60s});
    rs.pause();
    std::thread resume([&] {
        std::this_thread::sleep_for(700ms);  // past the command timeout: the claim's reply is lost
        rs.resume();
    });
    TaskId id;
    auto t0 = std::chrono::steady_clock::now();
    try {
        id = client.enqueue("q", "x", opts);
        MESSAGE("first enqueue returned after "
                << std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - t0)
                       .count()
                << " ms");
    } catch (const Duplicate&) {
        resume.join();
        throw;
    } catch (const Error& e) {
        // A caller's retry, once Redis is back, must not be a duplicate of the lost attempt.
        MESSAGE("first enqueue failed: " << std::string(e.what()));
        resume.join();
        id = client.enqueue("q", "x", opts);
    }
    if (resume.joinable()) resume.join();
    CHECK(c.cmd({"GET", "streamfleet:{q}:unique:k"}).value().str() == id);
    REQUIRE(eventually([&] { return integer(c, {"XLEN", "streamfleet:{q}"}) >= 2; }));
    auto e = entries(c, "streamfleet:{q}");
    REQUIRE(e.size() == 2);
    CHECK(e[1]["id"] == id);
    // The holder is a real task: a second enqueue is refused naming it.
    try {
        client.enqueue("q", "y", opts);
        FAIL("a second task with the key was accepted");
    } catch (const Duplicate& d) {
        CHECK(d.existing_id() == id);
    }
}
