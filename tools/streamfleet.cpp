// streamfleet: the command-line tool. Its flags are a contract (users' scripts
// depend on them): extend, never rename.
//
//   streamfleet enqueue --redis URL --queue Q [--data TEXT] [--lines] [--track]
//                       [--timeout-ms N] [--max-retries N] [--retry-delay-ms N]
//                       [--expires-in-ms N] [--delay-ms N | --at UNIX_MS]
//                       [--backoff fixed|linear|exponential] [--backoff-max-ms N]
//                       [--run-timeout-ms N] [--unique-key K --unique-ttl-ms N]
//   streamfleet cancel  --redis URL --queue Q --id ID
//   streamfleet get     --redis URL --queue Q --id ID [--json]
//   streamfleet worker  --redis URL --queue Q [--queue Q2 ...] --id ID
//                       [--concurrency N] --exec CMD
//   streamfleet stats   --redis URL --queue Q [--json]
//   streamfleet dead list    --redis URL --queue Q [--json] [--limit N]
//   streamfleet dead requeue --redis URL --queue Q (--id ID | --all)
//   streamfleet dead purge   --redis URL --queue Q
//
// Uses only the public API, like any user program.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <streamfleet/streamfleet.hpp>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using namespace std::chrono_literals;

constexpr const char* kUsage =
    "usage:\n"
    "  streamfleet enqueue --redis URL --queue Q [--data TEXT] [--lines] [--track]\n"
    "                      [--timeout-ms N] [--max-retries N] [--retry-delay-ms N] [--expires-in-ms N]\n"
    "                      [--delay-ms N | --at UNIX_MS] [--backoff fixed|linear|exponential]\n"
    "                      [--backoff-max-ms N] [--run-timeout-ms N] [--unique-key K --unique-ttl-ms N]\n"
    "                      [--spool FILE]\n"
    "  streamfleet cancel  --redis URL --queue Q --id ID\n"
    "  streamfleet get     --redis URL --queue Q --id ID [--json]\n"
    "  streamfleet worker  --redis URL --queue Q [--queue Q2 ...] --id ID [--concurrency N] --exec CMD\n"
    "                      [--lease-ms N] [--heartbeat-ms N] [--max-deliveries N]\n"
    "  streamfleet stats   --redis URL --queue Q [--json]\n"
    "  streamfleet dead list    --redis URL --queue Q [--json] [--limit N]\n"
    "  streamfleet dead requeue --redis URL --queue Q (--id ID | --all)\n"
    "  streamfleet dead purge   --redis URL --queue Q\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Flags of one subcommand: which take a value, which may repeat, which are switches.
struct Flags {
    std::map<std::string, std::vector<std::string>> values;
    std::map<std::string, bool> switches;

    static Flags parse(int argc, char** argv, int first, std::initializer_list<const char*> valued,
                       std::initializer_list<const char*> repeatable,
                       std::initializer_list<const char*> bools) {
        Flags f;
        auto in = [](std::initializer_list<const char*> set, std::string_view s) {
            for (const char* x : set) {
                if (s == x) return true;
            }
            return false;
        };
        for (int i = first; i < argc; ++i) {
            std::string a = argv[i];
            if (in(bools, a)) {
                f.switches[a] = true;
            } else if (in(valued, a) || in(repeatable, a)) {
                if (i + 1 >= argc) throw UsageError("flag " + a + " needs a value");
                if (!in(repeatable, a) && f.values.count(a)) throw UsageError("flag " + a + " given twice");
                f.values[a].push_back(argv[++i]);
            } else {
                throw UsageError("unknown flag '" + a + "'");
            }
        }
        return f;
    }

    std::optional<std::string> get(const std::string& name) const {
        auto it = values.find(name);
        if (it == values.end()) return std::nullopt;
        return it->second.front();
    }
    std::string need(const std::string& name) const {
        auto v = get(name);
        if (!v) throw UsageError("missing required flag " + name);
        return *v;
    }
    bool on(const std::string& name) const { return switches.count(name) != 0; }

    // A non-negative integer flag.
    std::optional<long long> number(const std::string& name) const {
        auto v = get(name);
        if (!v) return std::nullopt;
        long long out = 0;
        auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
        if (v->empty() || ec != std::errc() || p != v->data() + v->size() || out < 0) {
            throw UsageError("flag " + name + " needs a non-negative integer, got '" + *v + "'");
        }
        return out;
    }
};

// ---- enqueue ----

int cmd_enqueue(int argc, char** argv) {
    auto f = Flags::parse(argc, argv, 2,
                          {"--redis", "--queue", "--data", "--timeout-ms", "--max-retries",
                           "--retry-delay-ms", "--expires-in-ms", "--spool", "--delay-ms", "--at",
                           "--backoff", "--backoff-max-ms", "--run-timeout-ms", "--unique-key",
                           "--unique-ttl-ms"},
                          {}, {"--lines", "--track"});
    auto redis = f.need("--redis");
    auto queue = f.need("--queue");
    if (f.get("--data") && f.on("--lines")) throw UsageError("--data and --lines exclude each other");
    streamfleet::TaskOptions opts;
    if (auto n = f.number("--max-retries")) {
        if (*n > 0xffffffffLL) throw UsageError("--max-retries is too large");
        opts.max_retries = static_cast<std::uint32_t>(*n);
    }
    if (auto n = f.number("--retry-delay-ms")) opts.retry_delay = std::chrono::milliseconds(*n);
    if (auto n = f.number("--expires-in-ms")) opts.expires_in = std::chrono::milliseconds(*n);
    // Every task of a --lines run gets the same options, so with --delay-ms
    // they all become due together, counted from each one's enqueue.
    if (f.get("--delay-ms") && f.get("--at")) throw UsageError("--delay-ms and --at exclude each other");
    if (auto n = f.number("--delay-ms")) opts.delay = std::chrono::milliseconds(*n);
    if (auto n = f.number("--at")) {
        if (*n == 0) throw UsageError("--at needs a unix time in ms after the epoch");
        opts.run_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*n));
    }
    if (auto b = f.get("--backoff")) {
        if (*b == "fixed") opts.backoff = streamfleet::Backoff::fixed;
        else if (*b == "linear") opts.backoff = streamfleet::Backoff::linear;
        else if (*b == "exponential") opts.backoff = streamfleet::Backoff::exponential;
        else throw UsageError("--backoff must be fixed, linear or exponential, got '" + *b + "'");
    }
    if (auto n = f.number("--backoff-max-ms")) opts.backoff_max = std::chrono::milliseconds(*n);
    if (auto n = f.number("--run-timeout-ms")) opts.run_timeout = std::chrono::milliseconds(*n);
    if (f.get("--unique-key").has_value() != f.get("--unique-ttl-ms").has_value()) {
        throw UsageError("--unique-key and --unique-ttl-ms go together");
    }
    if (auto k = f.get("--unique-key")) {
        opts.unique_key = *k;
        opts.unique_ttl = std::chrono::milliseconds(*f.number("--unique-ttl-ms"));
        if (opts.unique_ttl.count() == 0) throw UsageError("--unique-ttl-ms must be positive");
    }
    auto timeout = f.number("--timeout-ms");
    bool track = f.on("--track");

    // Ride out a Redis outage: a full buffer makes enqueue wait for room rather
    // than fail, and the exit waits until Redis has every accepted task.
    streamfleet::Client client(
        {.redis = redis, .full_timeout = std::chrono::hours(24), .spool_path = f.get("--spool").value_or("")},
        {queue});
    std::vector<streamfleet::TaskHandle> handles;
    int duplicates = 0;
    auto submit = [&](const std::string& data) {
        try {
            if (track) {
                handles.push_back(client.enqueue_tracked(queue, data, opts));
                std::cout << handles.back().id() << "\n" << std::flush;
            } else {
                std::cout << client.enqueue(queue, data, opts) << "\n" << std::flush;
            }
        } catch (const streamfleet::Duplicate& e) {
            // The rest still go: with --lines, one key refuses every line after the first.
            std::cerr << "streamfleet enqueue: duplicate of task " << e.existing_id() << "\n";
            ++duplicates;
        }
    };
    if (auto data = f.get("--data")) {
        submit(*data);
    } else if (f.on("--lines")) {
        std::string line;
        while (std::getline(std::cin, line)) submit(line);
    } else {
        std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        submit(all);
    }

    int rc = duplicates > 0 ? 1 : 0;
    if (track) {
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout.value_or(0));
        for (auto& h : handles) {
            std::optional<streamfleet::TaskOutcome> out;
            if (timeout) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now());
                out = h.wait_for(std::max(left, 0ms));
            } else {
                out = h.wait();
            }
            if (!out) {
                std::cout << h.id() << " timeout: no outcome within " << *timeout << " ms\n";
                rc = 1;
                continue;
            }
            std::cout << h.id() << " " << streamfleet::to_string(out->status);
            if (!out->error.empty()) std::cout << ": " << out->error;
            std::cout << "\n";
            if (out->status != streamfleet::TaskStatus::completed) rc = 1;
        }
    }
    // Exit 0 only once every accepted task is in Redis.
    auto flush = timeout ? std::chrono::milliseconds(*timeout)
                         : std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24));
    if (!client.close(flush)) {
        std::cerr << "streamfleet: some tasks did not reach Redis within " << flush.count() << " ms\n";
        return 1;
    }
    return rc;
}

// ---- worker ----

// Runs `sh -c cmd` with `data` on stdin; returns nullopt on success, else the
// error text (tail of stderr, or how it ended).
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

int cmd_worker(int argc, char** argv) {
    auto f = Flags::parse(argc, argv, 2,
                          {"--redis", "--id", "--concurrency", "--exec", "--lease-ms", "--heartbeat-ms",
                           "--max-deliveries"},
                          {"--queue"}, {});
    auto redis = f.need("--redis");
    auto id = f.need("--id");
    auto cmd = f.need("--exec");
    if (!f.values.count("--queue")) throw UsageError("missing required flag --queue");
    unsigned concurrency = 4;
    if (auto n = f.number("--concurrency")) {
        if (*n == 0 || *n > 10'000) throw UsageError("--concurrency must be in 1..10000");
        concurrency = static_cast<unsigned>(*n);
    }

    // Block the shutdown signals in every thread (the ones started below
    // inherit the mask); one thread waits for them and shuts down gracefully.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    streamfleet::ServerOptions so{.redis = redis, .id = id, .concurrency = concurrency};
    if (auto n = f.number("--lease-ms")) so.lease = std::chrono::milliseconds(*n);
    if (auto n = f.number("--heartbeat-ms")) {
        if (*n == 0) throw UsageError("--heartbeat-ms must be positive");
        so.heartbeat_interval = std::chrono::milliseconds(*n);
        so.dead_after = 3 * so.heartbeat_interval;  // dead after three missed beats
    }
    if (auto n = f.number("--max-deliveries")) {
        if (*n == 0 || *n > 0xffffffffLL) throw UsageError("--max-deliveries must be in 1..4294967295");
        so.max_deliveries = static_cast<std::uint32_t>(*n);
    }
    streamfleet::Server server(so);
    for (const auto& q : f.values["--queue"]) {
        server.handle(q, [cmd](streamfleet::TaskContext& t) {
            std::vector<std::string> env = {
                "STREAMFLEET_TASK_ID=" + t.id(),
                "STREAMFLEET_QUEUE=" + t.queue(),
                "STREAMFLEET_RETRIES=" + std::to_string(t.retries()),
                "STREAMFLEET_DELIVERIES=" + std::to_string(t.deliveries()),
            };
            if (auto err = run_command(cmd, t.data(), env, t.cancel_token())) {
                throw std::runtime_error(*err);
            }
        });
    }
    std::atomic<bool> exiting{false};
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (exiting) return;  // woken by ourselves at exit
        std::cerr << "streamfleet worker " << id << ": " << strsignal(sig) << ", shutting down\n";
        server.shutdown(10s);
    });
    server.run();
    // run() also returns if shutdown came from elsewhere; release the waiter.
    exiting = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return 0;
}

// ---- stats ----

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(std::string_view s) {
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 0;
        if (n == 0 || i + n >= s.size()) return false;
        std::uint32_t cp = c & (0x3fU >> n);
        for (std::size_t k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 0x2) return false;
            cp = (cp << 6) | (cc & 0x3fU);
        }
        if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

// A JSON string literal. Text that is UTF-8 passes through; otherwise (binary
// payloads) every byte that is not printable ASCII is escaped as \u00XX, so
// the JSON stays valid (such bytes read back as Latin-1).
std::string json_str(std::string_view s) {
    const bool utf8 = valid_utf8(s);
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

int cmd_stats(int argc, char** argv) {
    auto f = Flags::parse(argc, argv, 2, {"--redis", "--queue"}, {}, {"--json"});
    auto redis = f.need("--redis");
    auto queue = f.need("--queue");
    streamfleet::Inspector inspector(redis);
    auto s = inspector.stats(queue);
    if (f.on("--json")) {
        std::printf(
            "{\"queue\":%s,\"stream_length\":%lld,\"pending\":%lld,\"consumers\":%lld,"
            "\"delayed\":%lld,\"dead\":%lld,\"clients\":%lld,\"servers\":%lld}\n",
            json_str(s.queue).c_str(), static_cast<long long>(s.stream_length), static_cast<long long>(s.pending),
            static_cast<long long>(s.consumers), static_cast<long long>(s.delayed),
            static_cast<long long>(s.dead), static_cast<long long>(s.clients),
            static_cast<long long>(s.servers));
    } else {
        std::printf("queue          %s\nstream length  %lld\npending        %lld\nconsumers      %lld\n"
                    "delayed        %lld\ndead           %lld\nlive clients   %lld\nlive servers   %lld\n",
                    s.queue.c_str(), static_cast<long long>(s.stream_length),
                    static_cast<long long>(s.pending), static_cast<long long>(s.consumers),
                    static_cast<long long>(s.delayed), static_cast<long long>(s.dead),
                    static_cast<long long>(s.clients), static_cast<long long>(s.servers));
    }
    return 0;
}

// ---- cancel / get ----

int cmd_cancel(int argc, char** argv) {
    auto f = Flags::parse(argc, argv, 2, {"--redis", "--queue", "--id"}, {}, {});
    auto queue = f.need("--queue");
    streamfleet::Client client({.redis = f.need("--redis"), .track_state = false}, {queue});
    try {
        auto what = client.cancel(queue, f.need("--id"));
        std::cout << streamfleet::to_string(what) << "\n";
    } catch (const streamfleet::NotFound& e) {
        std::cerr << "streamfleet cancel: " << e.what() << "\n";
        client.close(1s);
        return 1;
    }
    client.close(1s);
    return 0;
}

int cmd_get(int argc, char** argv) {
    auto f = Flags::parse(argc, argv, 2, {"--redis", "--queue", "--id"}, {}, {"--json"});
    auto queue = f.need("--queue");
    streamfleet::Client client({.redis = f.need("--redis"), .track_state = false}, {queue});
    auto t = client.get(queue, f.need("--id"));
    client.close(1s);
    if (f.on("--json")) {
        std::printf("{\"id\":%s,\"state\":\"%s\",\"retries\":%u,\"error\":%s,\"created_ms\":%lld,"
                    "\"updated_ms\":%lld,\"finished_ms\":%lld,\"run_at_ms\":%lld}\n",
                    json_str(t.id).c_str(), std::string(streamfleet::to_string(t.state)).c_str(), t.retries,
                    json_str(t.error).c_str(), static_cast<long long>(t.created_ms),
                    static_cast<long long>(t.updated_ms), static_cast<long long>(t.finished_ms),
                    static_cast<long long>(t.run_at_ms));
    } else {
        std::printf("id        %s\nstate     %s\nretries   %u\nerror     %s\ncreated   %lld\nupdated   %lld\n"
                    "finished  %lld\nrun_at    %lld\n",
                    t.id.c_str(), std::string(streamfleet::to_string(t.state)).c_str(), t.retries, t.error.c_str(),
                    static_cast<long long>(t.created_ms), static_cast<long long>(t.updated_ms),
                    static_cast<long long>(t.finished_ms), static_cast<long long>(t.run_at_ms));
    }
    return t.state == streamfleet::TaskState::unknown ? 1 : 0;
}

// ---- dead ----

int cmd_dead(int argc, char** argv) {
    if (argc < 3) throw UsageError("dead needs list, requeue or purge");
    std::string what = argv[2];
    if (what == "list") {
        auto f = Flags::parse(argc, argv, 3, {"--redis", "--queue", "--limit"}, {}, {"--json"});
        streamfleet::Inspector inspector(f.need("--redis"));
        auto limit = static_cast<std::size_t>(f.number("--limit").value_or(1000));
        auto letters = inspector.dead_letters(f.need("--queue"), limit);
        for (const auto& d : letters) {
            if (f.on("--json")) {
                std::string fields, history;
                for (const auto& h : d.history) history += (history.empty() ? "" : ",") + json_str(h);
                for (const auto& [k, v] : d.fields) {
                    if (k == "x_history") continue;  // binary; shown decoded as "history"
                    fields += (fields.empty() ? "" : ",") + json_str(k) + ":" + json_str(v);
                }
                std::printf("{\"entry_id\":%s,\"id\":%s,\"error\":%s,\"retries\":%u,\"died_at_ms\":%lld,"
                            "\"data\":%s,\"history\":[%s],\"fields\":{%s}}\n",
                            json_str(d.entry_id).c_str(), json_str(d.id).c_str(), json_str(d.error).c_str(),
                            d.retries, static_cast<long long>(d.died_at_ms), json_str(d.data).c_str(),
                            history.c_str(), fields.c_str());
            } else {
                std::printf("%s  %s  retries=%u  %s\n", d.entry_id.c_str(), d.id.c_str(), d.retries,
                            d.error.c_str());
            }
        }
        return 0;
    }
    if (what == "requeue") {
        auto f = Flags::parse(argc, argv, 3, {"--redis", "--queue", "--id"}, {}, {"--all"});
        auto queue = f.need("--queue");
        auto id = f.get("--id");
        if (id.has_value() == f.on("--all")) throw UsageError("dead requeue needs exactly one of --id ID and --all");
        streamfleet::Inspector inspector(f.need("--redis"));
        if (f.on("--all")) {
            std::printf("%zu\n", inspector.requeue_all_dead(queue));
            return 0;
        }
        if (!inspector.requeue_dead(queue, *id)) {
            std::fprintf(stderr, "streamfleet dead requeue: no dead letter of task %s in queue %s\n", id->c_str(),
                         queue.c_str());
            return 1;
        }
        return 0;
    }
    if (what == "purge") {
        auto f = Flags::parse(argc, argv, 3, {"--redis", "--queue"}, {}, {});
        streamfleet::Inspector inspector(f.need("--redis"));
        std::printf("%zu\n", inspector.purge_dead(f.need("--queue")));
        return 0;
    }
    throw UsageError("dead needs list, requeue or purge, got '" + what + "'");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << kUsage;
        return 2;
    }
    std::string sub = argv[1];
    try {
        if (sub == "enqueue") return cmd_enqueue(argc, argv);
        if (sub == "worker") return cmd_worker(argc, argv);
        if (sub == "stats") return cmd_stats(argc, argv);
        if (sub == "dead") return cmd_dead(argc, argv);
        if (sub == "cancel") return cmd_cancel(argc, argv);
        if (sub == "get") return cmd_get(argc, argv);
        if (sub == "--help" || sub == "-h" || sub == "help") {
            std::cout << kUsage;
            return 0;
        }
        throw UsageError("unknown command '" + sub + "'");
    } catch (const UsageError& e) {
        std::cerr << "streamfleet: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "streamfleet " << sub << ": " << e.what() << "\n";
        return 1;
    }
}
