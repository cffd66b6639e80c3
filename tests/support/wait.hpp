#pragma once

// Helpers for tests that wait on other threads or processes, and find the
// built tools. Waits poll with a generous bound: liveness, not speed.

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <thread>

#include <doctest/doctest.h>

namespace streamfleet::test {

/// Polls `pred` every 10 ms until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return pred();
}

/// Path of the built `streamfleet` CLI (meson passes SF_TOOLS_DIR).
inline std::string cli_path() {
    const char* dir = std::getenv("SF_TOOLS_DIR");
    REQUIRE(dir != nullptr);
    return std::string(dir) + "/streamfleet";
}

/// Runs `cmd` with sh; returns its stdout and exit status (-1 if it did not exit).
inline std::pair<std::string, int> shell(const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    int status = pclose(p);
    return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

}  // namespace streamfleet::test
