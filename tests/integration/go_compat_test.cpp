// Go-compatible mode against a Go-behaving peer (tests/support/go_peer.hpp): a Go client's tasks
// run on our server, a Go worker runs our client's tasks, each side's notifications reach the
// other's client, our servers leave a Go worker's task alone until it has been idle a minute, and
// the CLI does the same with --go-compat. Tasks are counted one by one.

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "streamfleet/streamfleet.hpp"
#include "support/go_peer.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using namespace streamfleet::test;

namespace {

ServerOptions go_server(const RedisServer& rs, std::string id) {
    return ServerOptions{.redis = rs.url(),
                         .id = std::move(id),
                         .concurrency = 4,
                         .read_block = 500ms,
                         .go_compatible = true};
}

// Task id -> runs, filled by handlers.
struct Runs {
    std::mutex m;
    std::map<std::string, int> by_id;
    void add(const std::string& id) {
        std::lock_guard lock(m);
        ++by_id[id];
    }
    int of(const std::string& id) {
        std::lock_guard lock(m);
        auto it = by_id.find(id);
        return it == by_id.end() ? 0 : it->second;
    }
    std::size_t distinct() {
        std::lock_guard lock(m);
        return by_id.size();
    }
};

// Reads the Go client's notifications until `n` distinct tasks have one (or 20 s pass).
std::map<std::string, GoNotification> collect(GoClient& gc, std::size_t n) {
    std::map<std::string, GoNotification> got;
    auto until = std::chrono::steady_clock::now() + 20s;
    while (got.size() < n && std::chrono::steady_clock::now() < until) {
        for (auto& note : gc.read()) {
            CHECK_MESSAGE(!got.count(note.task_id), "second notification for " << note.task_id);
            got[note.task_id] = note;
        }
    }
    return got;
}

std::string owner_of(TestConn& c, const std::string& stream, const std::string& entry) {
    auto p = c.cmd({"XPENDING", stream, kGoGroup, entry, entry, "1"}).value();
    return p.size() == 1 ? std::string(p[0][1].str()) : std::string();
}

}  // namespace

TEST_CASE("a Go client's tasks run on our go-compatible server; its notifications carry err_msg") {
    RedisServer rs;
    GoClient gc(rs.url(), "gq", "go-client-1");
    gc.beat();
    Runs runs;
    std::mutex m;
    std::map<std::string, int> attempts;  // by payload
    Server server(go_server(rs, "sf-1"));
    server.handle("gq", [&](TaskContext& t) {
        runs.add(t.id());
        std::string data(t.data());
        int n;
        {
            std::lock_guard lock(m);
            n = ++attempts[data];
        }
        if (data == "poison") return Outcome::dead("no good");
        if (data.starts_with("flaky") && n == 1) return Outcome::failure("first run fails");
        return Outcome::success();
    });
    server.start();

    std::vector<std::string> ok, untracked;
    for (int i = 0; i < 20; ++i) ok.push_back(gc.enqueue("ok" + std::to_string(i), true));
    for (int i = 0; i < 5; ++i) untracked.push_back(gc.enqueue("u" + std::to_string(i), false));
    auto poison = gc.enqueue("poison", true, 3);
    // Retried by our server at once, and after a delay (our delayed set, promoted by our server).
    auto flaky_now = gc.enqueue("flaky-now", true, 3, 0);
    auto flaky_later = gc.enqueue("flaky-later", true, 3, 200);

    auto got = collect(gc, ok.size() + 3);
    CHECK(gc.crashes() == 0);
    REQUIRE(got.size() == ok.size() + 3);
    for (const auto& id : ok) {
        CAPTURE(id);
        REQUIRE(got.count(id));
        CHECK(got[id].type == "completed");
        CHECK(got[id].err_msg.empty());
        CHECK(runs.of(id) == 1);
    }
    CHECK(got[poison].type == "error");
    CHECK(got[poison].err_msg == "no good");
    CHECK(runs.of(poison) == 1);
    for (const auto& id : {flaky_now, flaky_later}) {
        CAPTURE(id);
        CHECK(got[id].type == "completed");
        CHECK(runs.of(id) == 2);
    }
    REQUIRE(eventually([&] { return runs.distinct() == ok.size() + untracked.size() + 3; }));
    for (const auto& id : untracked) CHECK(runs.of(id) == 1);

    // Where things are: the Go names for what is shared, ours in the stream's slot.
    TestConn c(rs.url());
    REQUIRE(eventually([&] { return c.cmd({"XLEN", "streamfleet:gq"}).value().integer() == 0; }));
    CHECK(c.cmd({"XLEN", "{streamfleet:gq}:dead"}).value().integer() == 1);
    CHECK_FALSE(c.cmd({"ZSCORE", "{streamfleet:gq}:servers", "sf-1"}).value().is_nil());
    CHECK(c.cmd({"EXISTS", "streamfleet:{gq}"}).value().integer() == 0);
    // The janitor sweeps the Go clients' set, and leaves a live Go client alone.
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:gq:receivers", gc.id()}).value().is_nil());
    server.shutdown(5s);
}

TEST_CASE("native mode too: every notification our server writes carries err_msg") {
    RedisServer rs;
    TestConn c(rs.url());
    Server server(ServerOptions{.redis = rs.url(), .id = "sf-1", .read_block = 500ms});
    server.handle("nq", [](TaskContext& t) {
        if (t.data() == "bad") throw std::runtime_error("no good");
    });
    server.start();
    // The stream of a listening native client (made when it opens): natively, notifications go
    // only into a stream that exists.
    c.cmd({"XGROUP", "CREATE", "streamfleet:receiver:{c1}", "streamfleet-client", "0", "MKSTREAM"})
        .value();
    for (const char* data : {"ok", "bad"}) {
        std::vector<std::string> argv{"XADD", "streamfleet:{nq}", "*"};
        for (auto& f : go_task_fields({{"enc_version", "1"},
                                       {"id", std::string("task-") + data},
                                       {"client_id", "c1"},
                                       {"data", data},
                                       {"max_retries", "1"},
                                       {"expires_ts", "0"},
                                       {"retry_delay", "0"},
                                       {"send_notif", "1"},
                                       {"retries", "0"}})) {
            argv.push_back(std::move(f));
        }
        c.cmd(argv).value();
    }
    REQUIRE(eventually([&] {
        return c.cmd({"XLEN", "streamfleet:receiver:{c1}"}).value().integer() == 2;
    }));
    std::map<std::string, std::map<std::string, std::string>> by_task;
    auto notes = c.cmd({"XRANGE", "streamfleet:receiver:{c1}", "-", "+"}).value();
    for (const auto& e : notes.elements()) {
        auto f = entry_fields(e);
        by_task[f["task_id"]] = f;
    }
    REQUIRE(by_task.size() == 2);
    CHECK(by_task["task-ok"]["type"] == "completed");
    REQUIRE(by_task["task-ok"].count("err_msg"));
    CHECK(by_task["task-ok"]["err_msg"].empty());
    CHECK(by_task["task-bad"]["type"] == "error");
    CHECK(by_task["task-bad"]["err_msg"] == "no good");
    server.shutdown(5s);
}

TEST_CASE("a Go worker runs our go-compatible client's tasks and the tracked handles resolve") {
    RedisServer rs;
    GoWorker gw(rs.url(), "gq", "go-worker-1", [](const std::string& data) {
        return data == "bad" ? std::optional<std::string>("bad input") : std::nullopt;
    });
    Client client({.redis = rs.url(), .go_compatible = true}, {"gq"});
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 20; ++i)
        handles.push_back(client.enqueue_tracked("gq", "t" + std::to_string(i)));
    std::vector<std::string> fire;
    for (int i = 0; i < 5; ++i) fire.push_back(client.enqueue("gq", "f" + std::to_string(i)));
    // Fails twice: the Go worker re-adds it with the nine fields, then reports the error.
    auto bad = client.enqueue_tracked("gq", "bad", {.max_retries = 1});

    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    auto out = bad.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::error);
    CHECK(out->error == "bad input");
    REQUIRE(eventually([&] { return gw.runs().size() == handles.size() + fire.size() + 2; }));
    std::map<std::string, int> per_id;
    for (const auto& id : gw.runs()) ++per_id[id];
    for (const auto& h : handles) CHECK(per_id[h.id()] == 1);
    for (const auto& id : fire) CHECK(per_id[id] == 1);
    CHECK(per_id[bad.id()] == 2);
    CHECK(gw.malformed() == 0);
    // No state record rides along (a Go worker would never finish it).
    CHECK_FALSE(gw.extra_fields().count("x_state"));

    TestConn c(rs.url());
    // Our client beats in the Go form: unix ms in the receivers set.
    auto score = c.cmd({"ZSCORE", "streamfleet:gq:receivers", client.id()}).value();
    REQUIRE_FALSE(score.is_nil());
    CHECK(std::abs(std::stoll(std::string(score.str())) - wall_ms()) < 60'000);
    CHECK(c.cmd({"EXISTS", "streamfleet:receiver:" + client.id()}).value().integer() == 1);
    auto records = c.cmd({"KEYS", "*:task:*"}).value();
    CHECK(records.size() == 0);
    CHECK(client.close(5s));
    CHECK(c.cmd({"EXISTS", "streamfleet:receiver:" + client.id()}).value().integer() == 0);
    CHECK(c.cmd({"ZSCORE", "streamfleet:gq:receivers", client.id()}).value().is_nil());
}

TEST_CASE("Go and our workers share one queue: every task of both clients runs once") {
    RedisServer rs;
    GoClient gc(rs.url(), "gq", "go-client-1");
    gc.beat();
    Runs ours;
    Server server(go_server(rs, "sf-1"));
    server.handle("gq", [&](TaskContext& t) { ours.add(t.id()); });
    server.start();
    GoWorker gw(rs.url(), "gq", "go-worker-1", [](const std::string&) {
        std::this_thread::sleep_for(1ms);
        return std::optional<std::string>();
    });
    Client client({.redis = rs.url(), .go_compatible = true}, {"gq"});

    std::vector<std::string> go_ids;
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 100; ++i) {
        go_ids.push_back(gc.enqueue("g" + std::to_string(i), true));
        handles.push_back(client.enqueue_tracked("gq", "o" + std::to_string(i)));
    }
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    auto got = collect(gc, go_ids.size());
    CHECK(gc.crashes() == 0);
    CHECK(got.size() == go_ids.size());
    std::map<std::string, int> total;
    for (const auto& id : gw.runs()) ++total[id];
    {
        std::lock_guard lock(ours.m);
        for (const auto& [id, n] : ours.by_id) total[id] += n;
    }
    CHECK(total.size() == 200);
    for (const auto& [id, n] : total) {
        CAPTURE(id);
        CHECK(n == 1);
    }
    MESSAGE("Go worker ran " << gw.runs().size() << ", our server " << ours.distinct());
    server.shutdown(5s);
}

TEST_CASE("our server leaves a Go worker's task alone until it has been idle a minute") {
    RedisServer rs;
    TestConn c(rs.url());
    const std::string stream = "streamfleet:gq";
    c.cmd({"XGROUP", "CREATE", stream, kGoGroup, "0", "MKSTREAM"}).value();
    auto task = [&](const std::string& id) {
        std::vector<std::string> argv{"XADD", stream, "*"};
        for (auto& f : go_task_fields({{"enc_version", "1"},
                                       {"id", id},
                                       {"client_id", "go-client-1"},
                                       {"data", id},
                                       {"max_retries", "0"},
                                       {"expires_ts", "0"},
                                       {"retry_delay", "0"},
                                       {"send_notif", "0"},
                                       {"retries", "0"}})) {
            argv.push_back(std::move(f));
        }
        return std::string(c.cmd(argv).value().str());
    };
    auto read_as = [&](const std::string& consumer) {
        c.cmd({"XREADGROUP", "GROUP", kGoGroup, consumer, "COUNT", "1", "STREAMS", stream, ">"})
            .value();
    };
    // A Go worker died holding a task 40 s ago.
    auto stale = task("go-stale");
    read_as("go-worker-2");
    c.cmd({"XCLAIM", stream, kGoGroup, "go-worker-2", "0", stale, "IDLE", "40000", "JUSTID"})
        .value();
    // One of our own servers, registered and beating, stopped renewing its task: the control,
    // taken after our lease as before.
    auto ours = task("ours-stuck");
    read_as("sf-stuck");
    c.cmd({"XCLAIM", stream, kGoGroup, "sf-stuck", "0", ours, "IDLE", "5000", "JUSTID"}).value();
    c.cmd({"ZADD", "{streamfleet:gq}:servers", std::to_string(wall_ms() + 600'000), "sf-stuck"})
        .value();

    // A live Go worker runs a long task, renewing it every 2 s: idle for up to 2 s at a time,
    // past our 1 s lease.
    std::atomic<bool> release{false};
    GoWorker gw(
        rs.url(), "gq", "go-worker-1",
        [&](const std::string&) {
            while (!release) std::this_thread::sleep_for(10ms);
            return std::optional<std::string>();
        },
        2s);
    struct Release {
        std::atomic<bool>& flag;
        ~Release() { flag = true; }  // before gw's destructor waits for the run
    } releaser{release};
    auto running = task("go-long");
    REQUIRE(eventually([&] { return gw.runs().size() == 1; }));

    Runs runs;
    auto opts = go_server(rs, "sf-1");
    opts.lease = 1s;
    Server server(opts);
    server.handle("gq", [&](TaskContext& t) { runs.add(t.id()); });
    server.start();

    REQUIRE(eventually([&] { return runs.of("ours-stuck") == 1; }));
    // Several more idle scans (every ~0.5 s) pass; the Go workers' tasks stay theirs.
    std::this_thread::sleep_for(3s);
    CHECK(runs.of("go-long") == 0);
    CHECK(runs.of("go-stale") == 0);
    CHECK(owner_of(c, stream, running) == "go-worker-1");
    CHECK(owner_of(c, stream, stale) == "go-worker-2");

    // Idle a minute: the Go rule says it is anyone's now.
    c.cmd({"XCLAIM", stream, kGoGroup, "go-worker-2", "0", stale, "IDLE", "61000", "JUSTID"})
        .value();
    REQUIRE(eventually([&] { return runs.of("go-stale") == 1; }));
    CHECK(runs.of("go-long") == 0);
    CHECK(owner_of(c, stream, running) == "go-worker-1");
    // The Go worker finishes its task: it ran once, there.
    release = true;
    REQUIRE(eventually([&] { return owner_of(c, stream, running).empty(); }));
    CHECK(runs.of("go-long") == 0);
    CHECK(gw.runs() == std::vector<std::string>{"go-long"});
    server.shutdown(5s);
}

TEST_CASE("our go-compatible client deletes the streams of clients silent for 10 minutes") {
    RedisServer rs;
    TestConn c(rs.url());
    auto now = wall_ms();
    for (const auto& [id, age] :
         {std::pair<std::string, std::int64_t>{"ghost", 11 * 60'000}, {"quiet", 60'000}}) {
        c.cmd({"ZADD", "streamfleet:gq:receivers", std::to_string(now - age), id}).value();
        c.cmd({"XADD", "streamfleet:receiver:" + id, "*", "enc_version", "1"}).value();
    }
    Client client({.redis = rs.url(), .go_compatible = true}, {"gq"});
    REQUIRE(eventually([&] {
        return c.cmd({"EXISTS", "streamfleet:receiver:ghost"}).value().integer() == 0;
    }));
    REQUIRE(eventually([&] {
        return c.cmd({"ZSCORE", "streamfleet:gq:receivers", "ghost"}).value().is_nil();
    }));
    CHECK(c.cmd({"EXISTS", "streamfleet:receiver:quiet"}).value().integer() == 1);
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:gq:receivers", "quiet"}).value().is_nil());
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:gq:receivers", client.id()}).value().is_nil());
}

TEST_CASE("go-compatible: our own features on the Go key names, and the option checks") {
    RedisServer rs;
    Runs runs;
    std::atomic<int> flaky{0};
    Server server(go_server(rs, "sf-1"));
    server.handle("{orders}", [&](TaskContext& t) {
        runs.add(t.id());
        if (t.data() == "dead") throw std::runtime_error("dies");
        if (t.data() == "flaky" && flaky++ == 0) throw std::runtime_error("once");
    });
    server.start();
    Client client({.redis = rs.url(), .go_compatible = true}, {"{orders}"});
    auto later = client.enqueue_tracked("{orders}", "later", {.delay = 300ms});
    auto retried = client.enqueue_tracked(
        "{orders}", "flaky",
        {.max_retries = 3, .retry_delay = 100ms, .backoff = Backoff::exponential});
    auto dead = client.enqueue_tracked("{orders}", "dead", {.max_retries = 1});
    for (auto* h : {&later, &retried}) {
        auto out = h->wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    auto out = dead.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::error);
    CHECK(runs.of(later.id()) == 1);
    CHECK(runs.of(retried.id()) == 2);
    CHECK(runs.of(dead.id()) == 2);

    Inspector inspector(rs.url(), "streamfleet:", true);
    auto s = inspector.stats("{orders}");
    CHECK(s.dead == 1);
    CHECK(s.servers == 1);
    CHECK(s.clients == 1);
    auto letters = inspector.dead_letters("{orders}");
    REQUIRE(letters.size() == 1);
    CHECK(letters[0].id == dead.id());
    TestConn c(rs.url());
    CHECK(c.cmd({"XLEN", "streamfleet:{orders}:dead"}).value().integer() == 1);
    // No state records in this mode: cancel() does not find the task.
    CHECK_THROWS_AS(client.cancel("{orders}", later.id()), NotFound);
    server.shutdown(5s);

    CHECK_THROWS_AS(Server(ServerOptions{.id = "x", .lease = 61s, .go_compatible = true}),
                    InvalidArgument);
    CHECK_THROWS_AS(
        Client({.redis = rs.url(), .heartbeat_interval = 6min, .go_compatible = true}, {"gq"}),
        InvalidArgument);
    CHECK_THROWS_AS(Client({.redis = rs.url(), .go_compatible = true}, {"a{b"}), InvalidArgument);
    CHECK_THROWS_AS(Client({.redis = rs.url()}, {"{orders}"}), InvalidArgument);
}

namespace {}  // namespace

TEST_CASE("the CLI with --go-compat: worker, enqueue, stats, dead, get, cancel") {
    RedisServer rs;
    auto dir = rs.dir();
    auto cli = cli_path();

    // Every command takes the flag (a missing required flag is the complaint, not the flag).
    for (const char* cmd : {"enqueue", "worker", "stats", "get", "cancel", "dead list",
                            "dead requeue", "dead purge"}) {
        CAPTURE(cmd);
        auto r = run_captured(cli + " " + cmd + " --go-compat", dir);
        CHECK(r.code == 2);
        CHECK(r.err.find("unknown flag") == std::string::npos);
        CHECK(r.err.find("missing required flag") != std::string::npos);
    }
    CHECK(run_captured(cli + " --help", dir).out.find("[--go-compat]") != std::string::npos);

    // Our CLI worker runs a Go client's tasks; the Go client hears of each.
    auto log = dir + "/ran.txt";
    auto w =
        spawn_worker("--redis " + rs.url() + " --queue gq --id w1 --go-compat --exec '" +
                     "read x; echo \"$STREAMFLEET_TASK_ID\" >> " + log + "; [ \"$x\" != bad ]'");
    GoClient gc(rs.url(), "gq", "go-client-1");
    gc.beat();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(gc.enqueue("x" + std::to_string(i), true));
    auto bad = gc.enqueue("bad", true, 1);
    auto got = collect(gc, ids.size() + 1);
    CHECK(gc.crashes() == 0);
    for (const auto& id : ids) CHECK(got[id].type == "completed");
    CHECK(got[bad].type == "error");

    auto stats =
        run_captured(cli + " stats --redis " + rs.url() + " --queue gq --json --go-compat", dir);
    CHECK(stats.code == 0);
    CAPTURE(stats.out);
    CHECK(stats.out.find("\"dead\":1") != std::string::npos);
    CHECK(stats.out.find("\"servers\":1") != std::string::npos);
    CHECK(stats.out.find("\"clients\":1") != std::string::npos);
    auto list =
        run_captured(cli + " dead list --redis " + rs.url() + " --queue gq --go-compat", dir);
    CHECK(list.code == 0);
    CHECK(list.out.find(bad) != std::string::npos);
    // Without the flag the same queue is another (empty) one.
    CHECK(run_captured(cli + " dead list --redis " + rs.url() + " --queue gq", dir).out.empty());
    auto purge =
        run_captured(cli + " dead purge --redis " + rs.url() + " --queue gq --go-compat", dir);
    CHECK(purge.out == "1\n");
    kill_group(w, SIGTERM);
    {
        std::ifstream in(log);
        std::multiset<std::string> ran;
        for (std::string line; std::getline(in, line);) ran.insert(line);
        for (const auto& id : ids) CHECK(ran.count(id) == 1);
        CHECK(ran.count(bad) == 2);
    }

    // Our CLI enqueue --track, run by a Go worker.
    GoWorker gw(rs.url(), "gq2", "go-worker-1",
                [](const std::string&) { return std::optional<std::string>(); });
    auto enq = run_captured(cli + " enqueue --redis " + rs.url() +
                                " --queue gq2 --data hello --track --timeout-ms 20000 --go-compat",
                            dir);
    CHECK(enq.code == 0);
    CAPTURE(enq.out);
    CHECK(enq.out.find(" completed\n") != std::string::npos);
    REQUIRE(gw.runs().size() == 1);
    // No state records in this mode: get and cancel answer "unknown".
    auto get = run_captured(
        cli + " get --redis " + rs.url() + " --queue gq2 --id " + gw.runs()[0] + " --go-compat",
        dir);
    CHECK(get.code == 1);
    auto cancel = run_captured(
        cli + " cancel --redis " + rs.url() + " --queue gq2 --id " + gw.runs()[0] + " --go-compat",
        dir);
    CHECK(cancel.code == 1);
}
