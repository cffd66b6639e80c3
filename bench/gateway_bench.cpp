// gateway_bench: `streamfleet serve` under load, as HTTP clients of another language would use it.
// C keep-alive HTTP/1.1 connections driven from one thread with epoll: first they add N tasks
// (POST /add), then each pops and finishes until all N are done (POST /pop, then POST /finish
// of what it got). One JSON line: each phase's tasks/s and the per-request latency percentiles
// (a pop+finish pair counts as one).
//
// The load generator shares the machine's 2 cores with the gateway and Redis, so it is kept
// lean, as wrk is: one send and about one receive per request. (libcurl cost ~50 µs of CPU per
// request here, as much as the gateway itself, and so measured itself as much as the gateway.)
// It reads only what the gateway's replies are: a status line, a Content-Length, a body.
//
// Usage: gateway_bench --url http://127.0.0.1:PORT --topic Q --tasks N --concurrency C
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
    int fd = -1;
    std::string in;
    enum class Step { add, pop, finish } step = Step::add;
    Clock::time_point started;  // of the request (add) or of the pair (pop + finish)
    ~Conn() {
        if (fd >= 0) close(fd);
    }
};

// Writes all of `req` (a request is small; the socket's buffer takes it at once or soon).
bool send_all(int fd, const std::string& req) {
    std::size_t off = 0;
    while (off < req.size()) {
        auto n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

// A complete response at the front of `in`: its status and body; false while incomplete.
bool take_response(std::string& in, int& status, std::string& body) {
    auto end = in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    std::size_t length = 0;
    for (std::size_t at = in.find("\r\n"); at < end; at = in.find("\r\n", at + 2)) {
        if (strncasecmp(in.c_str() + at + 2, "Content-Length:", 15) == 0)
            length = std::strtoul(in.c_str() + at + 17, nullptr, 10);
    }
    if (in.size() < end + 4 + length) return false;
    status = std::atoi(in.c_str() + 9);  // "HTTP/1.1 200 ..."
    body = in.substr(end + 4, length);
    in.erase(0, end + 4 + length);
    return true;
}

std::string post(const std::string& host, const char* path, const std::string& body) {
    return std::string("POST ") + path + " HTTP/1.1\r\nHost: " + host +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
}

// The "id" of a popped task in `json`, or "" for "data": null.
std::string popped_id(const std::string& json) {
    auto at = json.find("\"id\":\"");
    if (at == std::string::npos) return "";
    at += 6;
    return json.substr(at, json.find('"', at) - at);
}

double pct(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
    std::string url, topic;
    long tasks = 10000, conc = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string f = argv[i], v = argv[i + 1];
        if (f == "--url") url = v;
        else if (f == "--topic") topic = v;
        else if (f == "--tasks") tasks = std::atol(v.c_str());
        else if (f == "--concurrency") conc = std::atol(v.c_str());
    }
    // http://IPV4:PORT only: the bench runs against a gateway on loopback.
    std::string host = url.rfind("http://", 0) == 0 ? url.substr(7) : "";
    auto colon = host.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    if (colon == std::string::npos ||
        inet_pton(AF_INET, host.substr(0, colon).c_str(), &addr.sin_addr) != 1 || topic.empty() ||
        tasks <= 0 || conc <= 0) {
        std::fprintf(stderr,
                     "usage: gateway_bench --url http://IPV4:PORT --topic Q --tasks N "
                     "--concurrency C\n");
        return 2;
    }
    addr.sin_port = htons(static_cast<std::uint16_t>(std::atoi(host.c_str() + colon + 1)));

    int ep = epoll_create1(0);
    std::vector<std::unique_ptr<Conn>> conns;
    for (long c = 0; c < conc; ++c) {
        auto conn = std::make_unique<Conn>();
        conn->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(conn->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            std::fprintf(stderr, "cannot connect to %s: %s\n", url.c_str(), std::strerror(errno));
            return 1;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = conn.get();
        epoll_ctl(ep, EPOLL_CTL_ADD, conn->fd, &ev);
        conns.push_back(std::move(conn));
    }
    const std::string add_req =
        post(host, "/add", "{\"topic\":\"" + topic + "\",\"body\":\"" + std::string(16, 'x') + "\"}");
    const std::string pop_req =
        post(host, "/pop", "{\"topic\":\"" + topic + "\",\"timeout_ms\":1000}");
    std::vector<double> adds, pops;
    long sent = 0, added = 0, done = 0, active = 0;
    bool failed = false;

    auto start = [&](Conn& c, const std::string& req) {
        if (!send_all(c.fd, req)) {
            std::fprintf(stderr, "send failed: %s\n", std::strerror(errno));
            failed = true;
            return;
        }
        ++active;
    };
    // Runs until no request is outstanding; `next` sees each response and may start another.
    auto run = [&](auto&& next) {
        epoll_event evs[64];
        std::string body;
        char buf[16384];
        while (active > 0 && !failed) {
            int n = epoll_wait(ep, evs, 64, 5000);
            if (n <= 0) {
                std::fprintf(stderr, "no reply within 5 s\n");
                failed = true;
                return;
            }
            for (int i = 0; i < n && !failed; ++i) {
                auto& c = *static_cast<Conn*>(evs[i].data.ptr);
                auto got = recv(c.fd, buf, sizeof buf, 0);
                if (got <= 0) {
                    std::fprintf(stderr, "connection closed by the gateway\n");
                    failed = true;
                    return;
                }
                c.in.append(buf, static_cast<std::size_t>(got));
                int status = 0;
                while (!failed && take_response(c.in, status, body)) {
                    --active;
                    if (status != 200) {
                        std::fprintf(stderr, "status %d: %s\n", status, body.c_str());
                        failed = true;
                        return;
                    }
                    next(c, body);
                }
            }
        }
    };

    auto t0 = Clock::now();
    for (auto& c : conns) {
        if (sent == tasks) break;
        c->started = Clock::now();
        start(*c, add_req);
        ++sent;
    }
    run([&](Conn& c, const std::string&) {
        adds.push_back(ms_since(c.started));
        ++added;
        if (sent < tasks) {
            c.started = Clock::now();
            start(c, add_req);
            ++sent;
        }
    });
    auto t1 = Clock::now();
    auto t2 = t1;
    if (!failed && added == tasks) {
        for (auto& c : conns) {
            c->step = Conn::Step::pop;
            c->started = Clock::now();
            start(*c, pop_req);
        }
        run([&](Conn& c, const std::string& body) {
            if (c.step == Conn::Step::finish) {
                pops.push_back(ms_since(c.started));
                // The phase ends with its last finish; pops still waiting then (for tasks
                // that are all done) only wait out their timeout, and are not timed.
                if (++done == tasks) t2 = Clock::now();
            } else if (auto id = popped_id(body); !id.empty()) {
                c.step = Conn::Step::finish;
                start(c, post(host, "/finish",
                              "{\"topic\":\"" + topic + "\",\"id\":\"" + id + "\"}"));
                return;
            }
            if (done < tasks) {  // another pop (also after an empty one: others may hold the rest)
                c.step = Conn::Step::pop;
                c.started = Clock::now();
                start(c, pop_req);
            }
        });
    }
    close(ep);
    if (failed || added != tasks || done != tasks) return 1;
    double add_s = std::chrono::duration<double>(t1 - t0).count();
    double pop_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf(
        "{\"bench\":\"gateway\",\"tasks\":%ld,\"concurrency\":%ld,\"add_per_s\":%.0f,"
        "\"add_p50_ms\":%.3f,\"add_p99_ms\":%.3f,\"pop_finish_per_s\":%.0f,"
        "\"pop_finish_p50_ms\":%.3f,\"pop_finish_p99_ms\":%.3f}\n",
        tasks, conc, static_cast<double>(tasks) / add_s, pct(adds, 0.5), pct(adds, 0.99),
        static_cast<double>(done) / pop_s, pct(pops, 0.5), pct(pops, 0.99));
    return 0;
}
