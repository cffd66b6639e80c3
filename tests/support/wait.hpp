#pragma once

// Helpers for tests that wait on other threads or processes, and find the
// built tools. Waits poll with a generous bound: liveness, not speed.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

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

/// Starts `streamfleet worker ARGS` in a process group of its own, so a
/// kill_group() takes the shells its --exec started too.
inline pid_t spawn_worker(const std::string& args) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", ("exec " + cli_path() + " worker " + args).c_str(), nullptr);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

/// Sends `sig` to the worker's whole process group and reaps the worker.
inline void kill_group(pid_t pid, int sig) {
    ::kill(-pid, sig);
    int status = 0;
    waitpid(pid, &status, 0);
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

/// What a command line did: its exit status (-1 if it did not exit) and its
/// stdout and stderr apart.
struct Run {
    int code;
    std::string out;
    std::string err;
};

/// Runs `cmd` with sh, capturing stdout and stderr in files under `dir`.
inline Run run_captured(const std::string& cmd, const std::string& dir) {
    std::string out_file = dir + "/out.txt", err_file = dir + "/err.txt";
    int status = std::system((cmd + " >" + out_file + " 2>" + err_file).c_str());
    auto slurp = [](const std::string& p) {
        std::ifstream in(p);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    };
    return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_file), slurp(err_file)};
}

}  // namespace streamfleet::test
