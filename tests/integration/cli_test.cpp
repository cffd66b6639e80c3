// The streamfleet CLI as users run it: real processes, a real redis-server.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using streamfleet::test::RedisServer;
using streamfleet::test::run_captured;
using streamfleet::test::spawn_worker;
using streamfleet::test::TestConn;

namespace {

int stop_worker(pid_t pid) {
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::size_t count_lines(const std::string& path) {
    std::ifstream in(path);
    std::size_t n = 0;
    std::string line;
    while (std::getline(in, line)) ++n;
    return n;
}

}  // namespace

TEST_CASE("bad flags, URLs and queue names: non-zero exit and a one-line error") {
    RedisServer rs;
    auto dir = rs.dir();
    struct Case {
        std::string args;
        const char* mentions;
    };
    const Case cases[] = {
        {"", "usage"},
        {"frobnicate", "unknown command 'frobnicate'"},
        {"enqueue --redis " + rs.url() + " --data x", "missing required flag --queue"},
        {"enqueue --redis " + rs.url() + " --queue q --bogus", "unknown flag '--bogus'"},
        {"enqueue --redis " + rs.url() + " --queue q --max-retries lots",
         "--max-retries needs a non-negative integer"},
        {"enqueue --redis " + rs.url() + " --queue q --data a --lines", "exclude each other"},
        {"enqueue --redis redis://h:port --queue q --data a", "port 'port'"},
        {"enqueue --redis " + rs.url() + " --queue '' --data a", "queue name is empty"},
        {"worker --redis " + rs.url() + " --queue q --exec true", "missing required flag --id"},
        {"worker --redis " + rs.url() + " --queue q --id w --exec true --concurrency 0",
         "--concurrency"},
        {"stats --redis " + rs.url(), "missing required flag --queue"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        auto r = run_captured(streamfleet::test::cli_path() + " " + c.args, dir);
        CHECK(r.code != 0);
        CAPTURE(r.err);
        CHECK(r.err.find(c.mentions) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') <= (c.args.empty() ? 20 : 1));
    }
}

TEST_CASE("--redis defaults to $STREAMFLEET_REDIS_URL, and the flag wins over it") {
    RedisServer rs;
    auto dir = rs.dir();
    const auto cli = streamfleet::test::cli_path();
    auto from_env =
        run_captured("STREAMFLEET_REDIS_URL=" + rs.url() + " " + cli +
                         " enqueue --queue envq --data x && STREAMFLEET_REDIS_URL=" + rs.url() +
                         " " + cli + " stats --queue envq --json",
                     dir);
    CAPTURE(from_env.err);
    CHECK(from_env.code == 0);
    CHECK(from_env.out.find("\"stream_length\":1") != std::string::npos);
    auto bad_env =
        run_captured("STREAMFLEET_REDIS_URL=redis://h:port " + cli + " stats --queue q", dir);
    CHECK(bad_env.code != 0);
    CHECK(bad_env.err.find("port 'port'") != std::string::npos);
    auto flag_wins = run_captured("STREAMFLEET_REDIS_URL=redis://h:port " + cli +
                                      " stats --redis " + rs.url() + " --queue envq",
                                  dir);
    CHECK(flag_wins.code == 0);
}

TEST_CASE("queues lists every queue with its counts; top refreshes them with a delivery rate") {
    RedisServer rs;
    auto dir = rs.dir();
    const auto cli = streamfleet::test::cli_path() + " ";
    auto none = run_captured(cli + "queues --redis " + rs.url(), dir);
    CHECK(none.code == 0);
    CHECK(none.out == "no queues\n");
    for (const char* q : {"alpha", "beta"}) {
        auto r = run_captured("printf 'a\\nb\\nc\\n' | " + cli + "enqueue --redis " + rs.url() +
                                  " --queue " + q + " --lines",
                              dir);
        REQUIRE(r.code == 0);
    }
    REQUIRE(
        run_captured(
            cli + "enqueue --redis " + rs.url() + " --queue beta --data d --delay-ms 600000", dir)
            .code == 0);
    auto json = run_captured(cli + "queues --redis " + rs.url() + " --json", dir);
    CAPTURE(json.out);
    CHECK(json.code == 0);
    CHECK(json.out.find("{\"queue\":\"alpha\",\"ready\":3,\"delayed\":0,") == 0);
    CHECK(json.out.find("\n{\"queue\":\"beta\",\"ready\":3,\"delayed\":1,") != std::string::npos);
    auto table = run_captured(cli + "queues --redis " + rs.url(), dir);
    CHECK(table.out.find("QUEUE") == 0);
    CHECK(table.out.find("\nalpha ") != std::string::npos);

    // A worker drains alpha while top watches: its rate shows up.
    auto w = spawn_worker("--redis " + rs.url() + " --queue alpha --id w1 --exec true");
    auto top = run_captured(cli + "top --redis " + rs.url() +
                                " --queue alpha --queue beta --interval-ms 300 --iterations 4",
                            dir);
    stop_worker(w);
    CAPTURE(top.out);
    CHECK(top.code == 0);
    CHECK(std::count(top.out.begin(), top.out.end(), 'Q') >= 4);  // a header per refresh
    CHECK(top.out.find("DELIVERED/S") != std::string::npos);
    CHECK(top.out.find("\nbeta ") != std::string::npos);
}

TEST_CASE("enqueue --track with a worker process: outcomes, exit codes, env, stderr as error") {
    RedisServer rs;
    auto dir = rs.dir();
    auto log = dir + "/ran.txt";
    auto w = spawn_worker(
        "--redis " + rs.url() +
        " --queue q --id w1 --concurrency 2 --exec '"
        "read x; echo \"$STREAMFLEET_QUEUE $STREAMFLEET_RETRIES $STREAMFLEET_DELIVERIES $x\" >> " +
        log + "; if [ \"$x\" = bad ]; then echo \"no good: $x\" >&2; exit 3; fi'");
    auto ok =
        run_captured("printf 'a\\nb\\n' | " + streamfleet::test::cli_path() + " enqueue --redis " +
                         rs.url() + " --queue q --lines --track --timeout-ms 20000",
                     dir);
    CHECK(ok.code == 0);
    CAPTURE(ok.out);
    CHECK(std::count(ok.out.begin(), ok.out.end(), '\n') == 4);  // 2 ids, 2 outcomes
    CHECK(ok.out.find(" completed\n") != std::string::npos);

    auto bad = run_captured(streamfleet::test::cli_path() + " enqueue --redis " + rs.url() +
                                " --queue q --data bad --track --max-retries 1 --timeout-ms 20000",
                            dir);
    CHECK(bad.code == 1);
    CAPTURE(bad.out);
    CHECK(bad.out.find(" error: no good: bad\n") != std::string::npos);

    auto stats = run_captured(
        streamfleet::test::cli_path() + " stats --redis " + rs.url() + " --queue q --json", dir);
    CHECK(stats.code == 0);
    CHECK(stats.out.find("\"dead\":1") != std::string::npos);
    CHECK(stats.out.find("\"servers\":1") != std::string::npos);
    CHECK(stats.out.find("\"stream_length\":0") != std::string::npos);

    CHECK(stop_worker(w) == 0);
    std::ifstream in(log);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    CHECK(all.find("q 0 1 a\n") != std::string::npos);
    CHECK(all.find("q 1 1 bad\n") != std::string::npos);  // the retry saw retries=1
}

TEST_CASE("JSON output keeps UTF-8 text and escapes binary and control bytes") {
    RedisServer rs;
    auto cli = streamfleet::test::cli_path();
    auto s = run_captured(cli + " stats --redis " + rs.url() + " --queue 'caf\xc3\xa9\"q' --json",
                          rs.dir());
    CHECK(s.code == 0);
    CAPTURE(s.out);
    CHECK(s.out.find("\"queue\":\"caf\xc3\xa9\\\"q\"") != std::string::npos);
    // A dead letter with a binary payload: still one valid JSON line.
    TestConn c(rs.url());
    REQUIRE(c.cmd({"XADD", "streamfleet:{q}:dead", "*", "id", "t1", "data",
                   std::string("\xff\x01z", 3)})
                .ok());
    auto d = run_captured(cli + " dead list --redis " + rs.url() + " --queue q --json", rs.dir());
    CHECK(d.code == 0);
    CAPTURE(d.out);
    CHECK(d.out.find("\"data\":\"\\u00ff\\u0001z\"") != std::string::npos);
}

TEST_CASE("stdin without --lines is one task; fire-and-forget exits 0 once Redis has it") {
    RedisServer rs;
    auto r = run_captured("printf 'multi\\nline\\n' | " + streamfleet::test::cli_path() +
                              " enqueue --redis " + rs.url() + " --queue q",
                          rs.dir());
    CHECK(r.code == 0);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    auto s = run_captured(
        streamfleet::test::cli_path() + " stats --redis " + rs.url() + " --queue q --json",
        rs.dir());
    CHECK(s.out.find("\"stream_length\":1") != std::string::npos);
}

TEST_CASE("10,000 tasks over 3 worker processes: each handled exactly once") {
    RedisServer rs;
    auto dir = rs.dir();
    auto out = dir + "/handled.txt";
    std::vector<pid_t> workers;
    for (int i = 0; i < 3; ++i) {
        workers.push_back(
            spawn_worker("--redis " + rs.url() + " --queue bulk --id w" + std::to_string(i) +
                         " --concurrency 4 --exec 'read x; echo \"$x\" >> " + out + "'"));
    }
    auto r = run_captured("seq 1 10000 | " + streamfleet::test::cli_path() + " enqueue --redis " +
                              rs.url() + " --queue bulk --lines",
                          dir);
    REQUIRE(r.code == 0);
    auto until = std::chrono::steady_clock::now() + 120s;
    while (count_lines(out) < 10'000 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(100ms);
    }
    std::this_thread::sleep_for(300ms);
    for (auto pid : workers) CHECK(stop_worker(pid) == 0);
    std::ifstream in(out);
    std::multiset<std::string> lines;
    std::string line;
    while (std::getline(in, line)) lines.insert(line);
    CHECK(lines.size() == 10'000);
    CHECK(std::set<std::string>(lines.begin(), lines.end()).size() == 10'000);
}

TEST_CASE(
    "enqueue --lines rides out an outage: it accepts while Redis is down and exits 0 once Redis "
    "has all") {
    RedisServer rs;
    auto dir = rs.dir();
    rs.kill();
    std::string cmd = "seq 1 50 | " + streamfleet::test::cli_path() + " enqueue --redis " +
                      rs.url() + " --queue q --lines > " + dir + "/ids 2> " + dir + "/err";
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
        _exit(127);
    }
    // Every line is accepted (an id printed) although Redis is down...
    auto until = std::chrono::steady_clock::now() + 20s;
    while (count_lines(dir + "/ids") < 50 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(50ms);
    }
    CHECK(count_lines(dir + "/ids") == 50);
    int status = 0;
    CHECK(waitpid(pid, &status, WNOHANG) == 0);  // ...and it waits for Redis
    rs.restart();
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    auto s = run_captured(
        streamfleet::test::cli_path() + " stats --redis " + rs.url() + " --queue q --json", dir);
    CHECK(s.out.find("\"stream_length\":50") != std::string::npos);
}
