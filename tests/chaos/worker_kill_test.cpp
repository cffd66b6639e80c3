// Chaos: three worker processes, one of them SIGKILLed at random every second
// and restarted with its id, while 5,000 tasks flow. Every task is counted.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "support/redis_server.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using streamfleet::test::cli_path;
using streamfleet::test::kill_group;
using streamfleet::test::RedisServer;
using streamfleet::test::spawn_worker;

namespace {

std::map<std::string, int> tally(const std::string& path) {
    std::ifstream in(path);
    std::map<std::string, int> out;
    std::string l;
    while (std::getline(in, l)) ++out[l];
    return out;
}

}  // namespace

TEST_CASE("5,000 tasks while a random worker is SIGKILLed every second: all complete") {
    RedisServer rs;
    const std::string out = rs.dir() + "/handled";
    constexpr int kTasks = 5000;
    constexpr int kConcurrency = 4;
    auto args = [&](int i) {
        return "--redis " + rs.url() + " --queue q --id w" + std::to_string(i) + " --concurrency " +
               std::to_string(kConcurrency) +
               " --heartbeat-ms 200 --lease-ms 5000 --exec 'read x; sleep 0.005; echo \"$x\" >> " +
               out + "'";
    };
    std::vector<pid_t> workers;
    for (int i = 0; i < 3; ++i) workers.push_back(spawn_worker(args(i)));
    REQUIRE(std::system(("seq 1 " + std::to_string(kTasks) + " | " + cli_path() +
                         " enqueue --redis " + rs.url() + " --queue q --lines > /dev/null")
                            .c_str()) == 0);
    std::mt19937 rng(12345);
    int kills = 0;
    auto until = std::chrono::steady_clock::now() + 150s;
    while (tally(out).size() < static_cast<std::size_t>(kTasks) &&
           std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(1s);
        int victim = static_cast<int>(rng() % 3);
        kill_group(workers[victim], SIGKILL);
        ++kills;
        workers[victim] = spawn_worker(args(victim));
    }
    // Let the survivors finish what the last kill left.
    streamfleet::test::eventually(
        [&] { return tally(out).size() >= static_cast<std::size_t>(kTasks); }, 60s);
    for (auto pid : workers) kill_group(pid, SIGTERM);

    auto seen = tally(out);
    int duplicates = 0;
    for (auto& [_, n] : seen) duplicates += n - 1;
    MESSAGE("kills: " << kills << ", handled: " << seen.size() << ", duplicates: " << duplicates);
    CHECK(seen.size() == static_cast<std::size_t>(kTasks));  // nothing lost
    for (int i = 1; i <= kTasks; ++i) {
        if (!seen.count(std::to_string(i))) {
            FAIL_CHECK("task " << i << " never ran");
            break;
        }
    }
    // A kill can repeat at most the tasks in flight on that worker.
    CHECK(duplicates <= kills * kConcurrency);
}
