// Runs one task's shell command for the worker: spawns it, feeds it, reaps it.
#include "run_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace cli {

std::optional<std::string> run_command(const std::string& cmd, std::string_view data,
                                       const std::vector<std::string>& env,
                                       const std::stop_token& cancel) {
    int in_pipe[2], err_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        return std::string("pipe failed: ") + std::strerror(errno);
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);  // the worker blocks these; the child must not
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> envs;
    for (char** e = environ; *e; ++e) envs.emplace_back(*e);
    envs.insert(envs.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string sh = "/bin/sh", dash_c = "-c", command = cmd;
    char* args[] = {sh.data(), dash_c.data(), command.data(), nullptr};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, args, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(in_pipe[0]);
    close(err_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(err_pipe[0]);
        return std::string("cannot start /bin/sh: ") + std::strerror(rc);
    }

    // Feed stdin and drain stderr together, so neither pipe can fill up and
    // deadlock the child.
    fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    std::size_t written = 0;
    int in_fd = in_pipe[1];
    if (data.empty()) {
        close(in_fd);
        in_fd = -1;
    }
    std::string err;
    bool killed = false;
    while (true) {
        pollfd fds[2] = {{err_pipe[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
        int n = poll(fds, in_fd >= 0 ? 2 : 1, 100);
        if (cancel.stop_requested() && !killed) {
            kill(pid, SIGTERM);
            killed = true;
        }
        if (n <= 0) continue;
        if (in_fd >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in_fd, data.data() + written, data.size() - written);
            if (w > 0) written += static_cast<std::size_t>(w);
            if (w < 0 && errno != EAGAIN) written = data.size();  // the child closed stdin
            if (written == data.size()) {
                close(in_fd);
                in_fd = -1;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t r = read(err_pipe[0], buf, sizeof buf);
            if (r <= 0) break;  // EOF: the child (and its children) closed stderr
            err.append(buf, static_cast<std::size_t>(r));
            if (err.size() > 8192) err.erase(0, err.size() - 4096);
        }
    }
    if (in_fd >= 0) close(in_fd);
    close(err_pipe[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return std::nullopt;
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    if (err.size() > 1000) err = err.substr(err.size() - 1000);
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by signal " + std::to_string(WTERMSIG(status));
    return err.empty() ? how : err;
}

}  // namespace cli
