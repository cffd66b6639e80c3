// `streamfleet serve` as a user of another language meets it: a real gateway process, a real
// redis-server, HTTP/1.1 over keep-alive (libcurl), C++ clients and servers on the same queues.

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <thread>

#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using streamfleet::test::eventually;
using streamfleet::test::TestConn;
using streamfleet::test::RedisServer;

namespace {

// A `streamfleet serve` process on a free port, its stdout's first line read for the port.
class GatewayProcess {
public:
    GatewayProcess(const std::string& args) {
        int fds[2];
        REQUIRE(pipe(fds) == 0);
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/bin/sh", "sh", "-c",
                  ("exec " + streamfleet::test::cli_path() + " serve --listen 127.0.0.1:0 " + args)
                      .c_str(),
                  nullptr);
            _exit(127);
        }
        close(fds[1]);
        std::string line;
        auto until = std::chrono::steady_clock::now() + 20s;
        char c;
        while (std::chrono::steady_clock::now() < until) {
            pollfd p{fds[0], POLLIN, 0};
            if (poll(&p, 1, 100) <= 0) continue;
            if (read(fds[0], &c, 1) != 1) break;
            if (c == '\n') break;
            line.push_back(c);
        }
        close(fds[0]);
        CAPTURE(line);
        auto at = line.find("http://127.0.0.1:");
        REQUIRE(at != std::string::npos);
        port_ = std::stoi(line.substr(at + 17));
    }
    ~GatewayProcess() { stop(SIGTERM); }
    int stop(int sig) {
        if (pid_ <= 0) return -1;
        kill(pid_, sig);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
    void signal(int sig) const { kill(pid_, sig); }

private:
    pid_t pid_ = -1;
    int port_ = 0;
};

// One keep-alive HTTP connection (a curl easy handle reused).
class Http {
public:
    explicit Http(std::string base, std::string token = "")
        : base_(std::move(base)), token_(std::move(token)) {
        h_ = curl_easy_init();
        REQUIRE(h_ != nullptr);
    }
    ~Http() { curl_easy_cleanup(h_); }
    struct Resp {
        long status = 0;
        json body;
        std::string raw;
    };
    Resp call(const std::string& method, const std::string& path, const std::string& body = "") {
        Resp r;
        curl_easy_reset(h_);
        auto url = base_ + path;
        curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h_, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, 60000L);
        curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
        std::string auth = "Authorization: Bearer " + token_;
        if (!token_.empty()) headers = curl_slist_append(headers, auth.c_str());
        curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers);
        if (method == "POST") {
            curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body.c_str());
            curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        }
        curl_easy_setopt(
            h_, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
                static_cast<std::string*>(u)->append(p, s * n);
                return s * n;
            });
        curl_easy_setopt(h_, CURLOPT_WRITEDATA, &r.raw);
        auto rc = curl_easy_perform(h_);
        curl_slist_free_all(headers);
        REQUIRE_MESSAGE(rc == CURLE_OK, curl_easy_strerror(rc));
        curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &r.status);
        r.body = json::parse(r.raw, nullptr, false);
        return r;
    }
    Resp post(const std::string& path, const json& body) { return call("POST", path, body.dump()); }
    Resp get(const std::string& path) { return call("GET", path); }

private:
    CURL* h_;
    std::string base_, token_;
};

// {"code": 0, "message": "ok", "data": ...}
json data_of(const Http::Resp& r) {
    CAPTURE(r.raw);
    REQUIRE(r.status == 200);
    REQUIRE(r.body.is_object());
    CHECK(r.body["code"] == 0);
    CHECK(r.body["message"] == "ok");
    return r.body["data"];
}

// An error reply: its status, a non-zero code, and a message mentioning `what`.
void check_error(const Http::Resp& r, long status, const std::string& what) {
    CAPTURE(r.raw);
    CHECK(r.status == status);
    REQUIRE(r.body.is_object());
    CHECK(r.body["code"] != 0);
    CHECK(r.body["message"].get<std::string>().find(what) != std::string::npos);
}

}  // namespace

TEST_CASE("gateway: add, pop, finish, get, stats; a popped task is leased, failures retry") {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue jobs --queue other --ttr-ms 60000");
    Http http(gw.base());

    auto added = data_of(http.post("/add", {{"topic", "jobs"}, {"body", "hello"}}));
    const auto id = added["id"].get<std::string>();
    CHECK_FALSE(id.empty());
    CHECK(data_of(http.get("/get?topic=jobs&id=" + id))["state"] == "ready");

    auto popped = data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 5000}}));
    REQUIRE(popped.is_object());
    CHECK(popped["id"] == id);
    CHECK(popped["body"] == "hello");
    CHECK(popped["retries"] == 0);
    CHECK(data_of(http.get("/get?topic=jobs&id=" + id))["state"] == "active");
    CHECK(data_of(http.post("/finish", {{"topic", "jobs"}, {"id", id}})).is_null());
    CHECK(eventually(
        [&] { return data_of(http.get("/get?topic=jobs&id=" + id))["state"] == "completed"; }));
    // Settled once: a second finish is refused.
    check_error(http.post("/finish", {{"topic", "jobs"}, {"id", id}}), 404, "not popped");

    // Nothing there: the long poll ends empty after its timeout.
    auto t0 = std::chrono::steady_clock::now();
    CHECK(data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 300}})).is_null());
    CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);

    // A task added while a pop waits is handed to it.
    std::thread adder([&] {
        std::this_thread::sleep_for(300ms);
        Http other(gw.base());
        data_of(
            other.post("/add", {{"topic", "jobs"}, {"id", "late-1"}, {"body_b64", "AAEC/w=="}}));
    });
    auto late = data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 10000}}));
    adder.join();
    REQUIRE(late.is_object());
    CHECK(late["id"] == "late-1");
    CHECK(late["body"].is_null());
    CHECK(late["body_b64"] == "AAEC/w==");
    // A chosen id is unique: a second add is a conflict.
    check_error(http.post("/add", {{"topic", "jobs"}, {"id", "late-1"}, {"body", "x"}}), 409,
                "late-1");

    // Failed runs retry per the task's policy, then die; the dead letter can be requeued.
    // dead: no retry, so it does not come back into "jobs" below.
    CHECK(
        data_of(http.post("/fail",
                          {{"topic", "jobs"}, {"id", "late-1"}, {"error", "boom"}, {"dead", true}}))
            .is_null());
    data_of(http.post("/add", {{"topic", "other"},
                               {"id", "flaky"},
                               {"body", "x"},
                               {"max_retries", 1},
                               {"retry_delay_ms", 0}}));
    auto first = data_of(http.post("/pop", {{"topic", "other"}, {"timeout_ms", 5000}}));
    REQUIRE(first.is_object());
    data_of(http.post("/fail", {{"topic", "other"}, {"id", "flaky"}, {"error", "first"}}));
    json second;
    CHECK(eventually([&] {
        second = data_of(http.post("/pop", {{"topic", "other"}, {"timeout_ms", 1000}}));
        return second.is_object();
    }));
    CHECK(second["id"] == "flaky");
    CHECK(second["retries"] == 1);
    data_of(http.post("/fail", {{"topic", "other"}, {"id", "flaky"}, {"error", "second"}}));
    json dead;
    CHECK(eventually([&] {
        dead = data_of(http.get("/v1/queues/other/dead"));
        return dead.size() == 1;
    }));
    CHECK(dead[0]["id"] == "flaky");
    CHECK(dead[0]["error"] == "second");
    auto flaky = data_of(http.get("/get?topic=other&id=flaky"));
    CHECK(flaky["state"] == "dead");
    // Its failed runs, oldest first, each "UNIX_MS error".
    REQUIRE(flaky["history"].size() == 2);
    CHECK(flaky["history"][0].get<std::string>().ends_with(" first"));
    CHECK(flaky["history"][1].get<std::string>().ends_with(" second"));
    CHECK(data_of(http.post("/v1/queues/other/dead/requeue", {{"id", "flaky"}}))["requeued"] == 1);
    auto again = data_of(http.post("/pop", {{"topic", "other"}, {"timeout_ms", 5000}}));
    REQUIRE(again.is_object());
    CHECK(again["id"] == "flaky");
    data_of(http.post("/finish", {{"topic", "other"}, {"id", "flaky"}}));

    // A lease (ttr) that runs out is a failed run: the task comes back.
    data_of(http.post("/add", {{"topic", "jobs"},
                               {"id", "slow"},
                               {"body", "s"},
                               {"ttr_ms", 1000},
                               {"retry_delay_ms", 0}}));
    auto slow = data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 5000}}));
    REQUIRE(slow.is_object());
    CHECK(slow["ttr_ms"] == 1000);
    json back;
    CHECK(eventually([&] {
        back = data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 1000}}));
        return back.is_object();
    }));
    CHECK(back["id"] == "slow");
    CHECK(back["retries"] == 1);
    // Within this run's 1 s lease.
    data_of(http.post("/finish", {{"topic", "jobs"}, {"id", "slow"}}));
    check_error(http.post("/finish", {{"topic", "jobs"}, {"id", "nope"}}), 404, "nope");

    // Cancel of a ready task: it is never popped.
    data_of(http.post("/add", {{"topic", "jobs"}, {"id", "doomed"}, {"body", "d"}}));
    CHECK(data_of(http.post("/cancel", {{"topic", "jobs"}, {"id", "doomed"}}))["was"] == "ready");
    CHECK(data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 200}})).is_null());
    CHECK(data_of(http.get("/v1/queues/jobs/tasks/doomed"))["state"] == "canceled");

    auto stats = data_of(http.get("/stats?topic=jobs"));
    CHECK(stats["topic"] == "jobs");
    CHECK(stats["settled_here"]["completed"] == 2);  // the first task and "slow"
    CHECK(stats["settled_here"]["dead"] == 1);       // "late-1"
    CHECK(stats["settled_here"]["canceled"] == 0);
    // All servers' counts, from Redis: "doomed" was canceled by the client's script, not here.
    CHECK(stats["finished"]["completed"] == 2);
    CHECK(stats["finished"]["dead"] == 1);
    CHECK(stats["finished"]["canceled"] == 1);
    CHECK(stats["finished"]["expired"] == 0);
    CHECK(stats["ready"] == 0);
    CHECK(stats["active"] == 0);
    auto all = data_of(http.get("/stats"));
    CHECK(all["topics"].size() == 2);
    CHECK(all["settled_here"]["completed"] >= 3);
    CHECK(data_of(http.get("/v1/queues")).size() == 2);
}

TEST_CASE("gateway: bad requests get 4xx naming the problem; a token guards every endpoint") {
    RedisServer rs;
    auto token_file = rs.dir() + "/token";
    std::ofstream(token_file) << "s3cret\n";
    GatewayProcess gw("--redis " + rs.url() + " --queue jobs --max-body-bytes 4096 --token-file " +
                      token_file);
    Http anon(gw.base());
    check_error(anon.post("/add", {{"topic", "jobs"}, {"body", "x"}}), 401, "bearer token");
    Http wrong(gw.base(), "s3cres");
    check_error(wrong.get("/stats"), 401, "bearer token");
    Http http(gw.base(), "s3cret");
    check_error(http.call("POST", "/add", "{\"topic\": "), 400, "not well-formed JSON");
    check_error(http.call("POST", "/add", "[1,2]"), 400, "JSON object");
    check_error(http.post("/add", {{"body", "x"}}), 400, "'topic' is required");
    check_error(http.post("/add", {{"topic", 7}, {"body", "x"}}), 400, "'topic' must be a string");
    check_error(http.post("/add", {{"topic", "nope"}, {"body", "x"}}), 400, "unknown topic 'nope'");
    check_error(http.post("/add", {{"topic", "jobs"}}), 400, "'body'");
    check_error(http.post("/add", {{"topic", "jobs"}, {"body", "x"}, {"delay_ms", -5}}), 400,
                "'delay_ms' must be a non-negative integer");
    check_error(http.post("/add", {{"topic", "jobs"}, {"body_b64", "***"}}), 400, "base64");
    check_error(http.post("/add", {{"topic", "jobs"}, {"body", std::string(5000, 'x')}}), 413,
                "4096");
    check_error(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", "soon"}}), 400, "timeout_ms");
    check_error(http.get("/get?topic=jobs"), 400, "'id' is required");
    check_error(http.get("/get?topic=jobs&id=ghost"), 404, "ghost");
    for (const char* list : {"ready", "pending", "dead"})
        check_error(http.get(std::string("/v1/queues/jobs/") + list + "?after=yesterday"), 400,
                    "'after' must be an entry id");
    CHECK(data_of(http.get("/v1/queues/jobs/pending?after=1-0")).empty());
    check_error(http.get("/v1/queues/jobs/delayed?offset=-1"), 400, "'offset'");
    check_error(http.get("/add"), 405, "GET");
    check_error(http.get("/nowhere"), 404, "/nowhere");
    // After all that, the gateway still works.
    auto id = data_of(http.post("/add", {{"topic", "jobs"}, {"body", "fine"}}))["id"];
    CHECK(data_of(http.post("/pop", {{"topic", "jobs"}, {"timeout_ms", 5000}}))["id"] == id);
}

TEST_CASE("gateway: tasks cross between HTTP and C++, and a killed gateway loses no popped task") {
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue mixed --queue cpp --id gw-1");
    Http http(gw.base());

    // HTTP add → a C++ handler runs it (the gateway reads "cpp" only for pops, and none waits).
    streamfleet::Server worker({.redis = rs.url(), .id = "cpp-worker", .concurrency = 2});
    std::mutex ran_mutex;
    std::vector<std::string> ran;
    worker.handle("cpp", [&](streamfleet::TaskContext& t) {
        std::lock_guard lock(ran_mutex);
        ran.push_back(std::string(t.id()) + "=" + std::string(t.data()));
    });
    worker.start();
    data_of(http.post("/add", {{"topic", "cpp"}, {"id", "to-cpp"}, {"body", "from http"}}));
    CHECK(eventually([&] {
        std::lock_guard lock(ran_mutex);
        return ran.size() == 1;
    }));
    CHECK(ran.at(0) == "to-cpp=from http");
    CHECK(eventually(
        [&] { return data_of(http.get("/get?topic=cpp&id=to-cpp"))["state"] == "completed"; }));
    worker.shutdown();

    // C++ enqueue → HTTP pop.
    streamfleet::Client client({.redis = rs.url()}, {"mixed", "cpp"});
    auto from_cpp = client.enqueue_confirmed("mixed", "from c++");
    auto p = data_of(http.post("/pop", {{"topic", "mixed"}, {"timeout_ms", 5000}}));
    REQUIRE(p.is_object());
    CHECK(p["id"] == from_cpp);
    CHECK(p["body"] == "from c++");
    data_of(http.post("/finish", {{"topic", "mixed"}, {"id", from_cpp}}));
    CHECK(eventually(
        [&] { return client.get("mixed", from_cpp).state == streamfleet::TaskState::completed; }));

    // A popped task whose gateway is SIGKILLed comes back: the gateway restarted with its id
    // takes back what its previous life held.
    data_of(http.post("/add", {{"topic", "mixed"}, {"id", "held"}, {"body", "h"}}));
    auto held = data_of(http.post("/pop", {{"topic", "mixed"}, {"timeout_ms", 5000}}));
    REQUIRE(held.is_object());
    CHECK(held["id"] == "held");
    gw.stop(SIGKILL);
    GatewayProcess again("--redis " + rs.url() + " --queue mixed --queue cpp --id gw-1");
    Http http2(again.base());
    json back;
    CHECK(eventually(
        [&] {
            back = data_of(http2.post("/pop", {{"topic", "mixed"}, {"timeout_ms", 1000}}));
            return back.is_object();
        },
        30s));
    CHECK(back["id"] == "held");
    CHECK(back["deliveries"] >= 2);
    data_of(http2.post("/finish", {{"topic", "mixed"}, {"id", "held"}}));
    CHECK(eventually(
        [&] { return client.get("mixed", "held").state == streamfleet::TaskState::completed; }));
    client.close();
}

TEST_CASE("gateway: a popped task canceled while its gateway was dead is not popped again") {
    RedisServer rs;
    std::optional<GatewayProcess> gw(std::in_place, "--redis " + rs.url() + " --queue q --id gw-c");
    Http http(gw->base());
    data_of(http.post("/add", {{"topic", "q"}, {"id", "doomed"}, {"body", "d"}}));
    auto p = data_of(http.post("/pop", {{"topic", "q"}, {"timeout_ms", 5000}}));
    REQUIRE(p.is_object());
    CHECK(p["id"] == "doomed");
    gw->stop(SIGKILL);
    gw.reset();

    // Nobody hears the request (no server runs): only the record says canceled.
    streamfleet::Client client({.redis = rs.url()}, {"q"});
    CHECK(client.cancel("q", "doomed") == streamfleet::CancelResult::active);
    client.enqueue_confirmed("q", "fine", {.id = "after"});

    // The restarted gateway takes back what it held, and ends the canceled one instead of
    // handing it out.
    GatewayProcess again("--redis " + rs.url() + " --queue q --id gw-c");
    Http http2(again.base());
    std::vector<std::string> popped;
    CHECK(eventually(
        [&] {
            auto t = data_of(http2.post("/pop", {{"topic", "q"}, {"timeout_ms", 500}}));
            if (t.is_object()) {
                popped.push_back(t["id"].get<std::string>());
                data_of(http2.post("/finish", {{"topic", "q"}, {"id", t["id"]}}));
            }
            return client.get("q", "doomed").state == streamfleet::TaskState::canceled &&
                   client.get("q", "after").state == streamfleet::TaskState::completed;
        },
        30s));
    CAPTURE(popped.size());
    CHECK(std::count(popped.begin(), popped.end(), "doomed") == 0);
    CHECK(std::count(popped.begin(), popped.end(), "after") == 1);
    client.close();
}

TEST_CASE("gateway: with Redis silent, /add answers 503 in time, and the task still lands") {
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue slow --add-timeout-ms 1500");
    Http http(gw.base());
    data_of(http.post("/add", {{"topic", "slow"}, {"body", "before"}}));
    rs.pause();
    auto t0 = std::chrono::steady_clock::now();
    auto r = http.post("/add", {{"topic", "slow"}, {"body", "during"}});
    auto took = std::chrono::steady_clock::now() - t0;
    rs.resume();
    check_error(r, 503, "has not confirmed task ");
    CHECK(took >= 1400ms);
    CHECK(took < 8s);
    // The message names the task, which the gateway still sends: it is in Redis once it answers.
    auto msg = r.body["message"].get<std::string>();
    auto at = msg.find("task ") + 5;
    auto id = msg.substr(at, msg.find(' ', at) - at);
    CHECK(eventually([&] {
        auto got = http.get("/get?topic=slow&id=" + id);
        return got.status == 200 && got.body["data"]["state"] == "ready";
    }));
    TestConn c(rs.url());
    CHECK(c.cmd({"XLEN", "streamfleet:{slow}"}).value().integer() == 2);
}

TEST_CASE("gateway: a pop takes one task, in order; what no pop took stays ready for C++ servers") {
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue ahead");
    Http http(gw.base());
    streamfleet::Client client({.redis = rs.url()}, {"ahead"});
    std::set<std::string> all;
    std::vector<std::string> order;
    for (int i = 0; i < 20; ++i) {
        order.push_back(client.enqueue_confirmed("ahead", "t"));
        all.insert(order.back());
    }
    // Pops in a row: each takes the next task, and only that one is delivered.
    std::set<std::string> popped;
    for (int i = 0; i < 5; ++i) {
        auto t = data_of(http.post("/pop", {{"topic", "ahead"}, {"timeout_ms", 5000}}));
        REQUIRE(t.is_object());
        CHECK(t["id"] == order[static_cast<std::size_t>(i)]);
        popped.insert(t["id"].get<std::string>());
        // The previous finish was answered once taken; its ack reaches Redis a moment later.
        json s;
        CHECK(eventually([&] {
            s = data_of(http.get("/stats?topic=ahead"));
            return s["active"] == 1;
        }));
        CHECK(s["ready"] == 19 - i);
        data_of(http.post("/finish", {{"topic", "ahead"}, {"id", t["id"]}}));
    }
    // No more pops: a C++ worker gets every other task.
    streamfleet::Server worker({.redis = rs.url(), .id = "cpp", .concurrency = 4});
    std::mutex m;
    std::set<std::string> ran;
    worker.handle("ahead", [&](streamfleet::TaskContext& t) {
        std::lock_guard lock(m);
        ran.insert(std::string(t.id()));
    });
    worker.start();
    CHECK(eventually([&] {
        std::lock_guard lock(m);
        return ran.size() + popped.size() == all.size();
    }));
    std::lock_guard lock(m);
    for (const auto& id : popped) CHECK(ran.count(id) == 0);
    worker.shutdown();
    client.close();
}

TEST_CASE("Server pull mode: pop and settle from C++, handled and pulled queues side by side") {
    RedisServer rs;
    streamfleet::Client client({.redis = rs.url()}, {"pulled", "handled"});
    streamfleet::Server server({.redis = rs.url(), .id = "puller", .concurrency = 4});
    std::atomic<int> ran{0};
    server.handle("handled", [&](streamfleet::TaskContext&) { ++ran; });
    server.pull("pulled");
    CHECK_THROWS_AS(server.pull("pulled"), streamfleet::InvalidArgument);
    CHECK_THROWS_AS(server.pop("pulled", 10ms, 1s), streamfleet::InvalidArgument);  // not started
    server.start();
    CHECK_THROWS_AS(server.pop("handled", 10ms, 1s), streamfleet::InvalidArgument);
    CHECK_THROWS_AS(server.pop("pulled", 10ms, 0ms), streamfleet::InvalidArgument);

    // Nothing is read ahead of pops: added tasks stay ready in Redis until someone asks.
    std::set<std::string> ids;
    for (int i = 0; i < 6; ++i)
        ids.insert(client.enqueue_confirmed("pulled", "p" + std::to_string(i)));
    client.enqueue_confirmed("handled", "h");
    CHECK(eventually([&] { return ran == 1; }));
    streamfleet::Inspector inspector(rs.url());
    CHECK(inspector.stats("pulled").pending == 0);

    std::set<std::string> seen;
    for (int i = 0; i < 6; ++i) {
        auto t = server.pop("pulled", 2s, 10s);
        REQUIRE(t.has_value());
        seen.insert(t->id);
        CHECK(server.settle("pulled", t->id, streamfleet::Outcome::success()));
        CHECK_FALSE(server.settle("pulled", t->id, streamfleet::Outcome::success()));
    }
    CHECK(seen == ids);
    CHECK_FALSE(server.pop("pulled", 100ms, 1s).has_value());
    CHECK(eventually([&] { return server.stats().succeeded == 7; }));
    server.shutdown();
    client.close();
}

TEST_CASE("gateway: /metrics parses as Prometheus text and counts what happened") {
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue m1 --queue m2");
    Http http(gw.base());
    for (int i = 0; i < 3; ++i) data_of(http.post("/add", {{"topic", "m1"}, {"body", "x"}}));
    data_of(http.post("/add", {{"topic", "m2"}, {"body", "y"}, {"delay_ms", 600000}}));
    for (int i = 0; i < 2; ++i) {
        auto t = data_of(http.post("/pop", {{"topic", "m1"}, {"timeout_ms", 5000}}));
        REQUIRE(t.is_object());
        data_of(http.post("/finish", {{"topic", "m1"}, {"id", t["id"]}}));
    }
    auto held = data_of(http.post("/pop", {{"topic", "m1"}, {"timeout_ms", 5000}}));
    REQUIRE(held.is_object());
    // A finish is answered once it is taken; its ack reaches Redis a moment later.
    REQUIRE(eventually([&] {
        return http.get("/metrics").raw.find("streamfleet_queue_pending{queue=\"m1\"} 1\n") !=
               std::string::npos;
    }));

    auto r = http.get("/metrics");
    REQUIRE(r.status == 200);
    // prometheus_client's own parser (Debian python3-prometheus-client): every sample as
    // "name{labels} value" lines, or a traceback if the text is not valid exposition.
    auto file = rs.dir() + "/metrics.txt";
    std::ofstream(file) << r.raw;
    auto [out, code] = streamfleet::test::shell(
        "/usr/bin/python3 -c 'import sys\n"
        "from prometheus_client.parser import text_string_to_metric_families as parse\n"
        "for f in parse(open(sys.argv[1]).read()):\n"
        "    for s in f.samples:\n"
        "        print(s.name, s.labels.get(\"queue\", \"\"), s.labels.get(\"le\", \"\"), "
        "s.value)' " +
        file + " 2>&1");
    CAPTURE(r.raw);
    CAPTURE(out);
    REQUIRE(code == 0);
    auto has = [&](const std::string& line) { return out.find(line + "\n") != std::string::npos; };
    CHECK(has("streamfleet_tasks_enqueued_total m1  3.0"));
    CHECK(has("streamfleet_tasks_enqueued_total m2  1.0"));
    CHECK(has("streamfleet_tasks_completed_total m1  2.0"));
    CHECK(has("streamfleet_tasks_completed_total m2  0.0"));
    CHECK(has("streamfleet_handler_duration_seconds_count m1  2.0"));
    CHECK(has("streamfleet_handler_duration_seconds_bucket m1 +Inf 2.0"));
    CHECK(has("streamfleet_start_latency_seconds_count m1  3.0"));
    CHECK(has("streamfleet_queue_ready m1  0.0"));
    CHECK(has("streamfleet_queue_pending m1  1.0"));
    CHECK(has("streamfleet_queue_delayed m2  1.0"));
    CHECK(has("streamfleet_queue_dead m1  0.0"));
    CHECK(has("streamfleet_servers_live m1  1.0"));
    CHECK(has("streamfleet_queue_tasks_completed_total m1  2.0"));  // Redis's count
    CHECK(has("streamfleet_queue_tasks_dead_total m1  0.0"));
    CHECK(out.find("streamfleet_queue_oldest_pending_age_seconds m1") != std::string::npos);
    data_of(http.post("/finish", {{"topic", "m1"}, {"id", held["id"]}}));
}

TEST_CASE("gateway: the dashboard in headless Chromium shows the counts and requeues by a click") {
    RedisServer rs;
    auto token_file = rs.dir() + "/token";
    std::ofstream(token_file) << "dash-token\n";
    GatewayProcess gw("--redis " + rs.url() + " --queue dash --token-file " + token_file);
    Http http(gw.base(), "dash-token");
    data_of(http.post("/add", {{"topic", "dash"}, {"id", "poison"}, {"body", "p"}}));
    auto p = data_of(http.post("/pop", {{"topic", "dash"}, {"timeout_ms", 5000}}));
    REQUIRE(p["id"] == "poison");
    data_of(http.post(
        "/fail", {{"topic", "dash"}, {"id", "poison"}, {"error", "poisoned"}, {"dead", true}}));
    data_of(http.post("/add", {{"topic", "dash"}, {"id", "fine"}, {"body", "f"}}));
    auto f = data_of(http.post("/pop", {{"topic", "dash"}, {"timeout_ms", 5000}}));
    REQUIRE(f["id"] == "fine");
    data_of(http.post("/finish", {{"topic", "dash"}, {"id", "fine"}}));
    for (int i = 0; i < 3; ++i)
        data_of(http.post("/add", {{"topic", "dash"}, {"body", "task " + std::to_string(i)}}));
    // The page itself needs no token; its API calls use the one in its URL.
    auto page = Http(gw.base()).get("/");
    CHECK(page.status == 200);
    CHECK(page.raw.find("<title>streamfleet</title>") != std::string::npos);

    const char* tests_dir = std::getenv("SF_TESTS_DIR");
    const char* artifacts = std::getenv("SF_ARTIFACTS_DIR");
    REQUIRE(tests_dir != nullptr);
    std::string shot = std::string(artifacts ? artifacts : rs.dir().c_str()) + "/dashboard.png";
    auto [out, code] = streamfleet::test::shell(
        "/usr/bin/python3 " + std::string(tests_dir) + "/integration/dashboard_check.py '" +
        gw.base() + "/?token=dash-token' dash poison " + shot + " 2>&1");
    CAPTURE(out);
    CHECK(code == 0);
    CHECK(out.find("ok") != std::string::npos);
    MESSAGE("dashboard screenshot: " << shot);
    // What the click did, as the API sees it.
    auto stats = data_of(http.get("/stats?topic=dash"));
    CHECK(stats["dead"] == 0);
    CHECK(stats["ready"] == 4);
}

TEST_CASE("gateway: SIGTERM answers waiting pops, lets a popped task be finished, exits 0") {
    RedisServer rs;
    GatewayProcess gw("--redis " + rs.url() + " --queue grace");
    Http http(gw.base());
    data_of(http.post("/add", {{"topic", "grace"}, {"id", "g1"}, {"body", "x"}}));
    auto t = data_of(http.post("/pop", {{"topic", "grace"}, {"timeout_ms", 5000}}));
    REQUIRE(t.is_object());
    std::thread waiter([&] {
        Http other(gw.base());
        auto r = other.post("/pop", {{"topic", "grace"}, {"timeout_ms", 20000}});
        CHECK(r.status == 200);  // answered empty at shutdown, not left hanging
        CHECK(r.body["data"].is_null());
    });
    std::this_thread::sleep_for(300ms);
    gw.signal(SIGTERM);
    std::this_thread::sleep_for(300ms);
    // Within the shutdown's grace, the popped task can still be finished.
    CHECK(data_of(http.post("/finish", {{"topic", "grace"}, {"id", "g1"}})).is_null());
    waiter.join();
    CHECK(gw.stop(0) == 0);
    streamfleet::Client client({.redis = rs.url()}, {"grace"});
    CHECK(client.get("grace", "g1").state == streamfleet::TaskState::completed);
    client.close();
}
