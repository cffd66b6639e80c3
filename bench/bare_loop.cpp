// bench/bare_loop: the limits of a job queue on Redis Streams, measured with
// plain blocking hiredis and no streamfleet code. The figures it prints are the
// yardstick streamfleet_bench is judged against. Prints one JSON object.
//
//   bare_loop --redis redis://HOST:PORT --scenario e2e|latency|lua --tasks N
//             --concurrency C [--notify] [--rate R] [--payload-bytes B]
//             [--lua-file PATH]
//
// e2e      A producer connection (main thread) XADDs N tasks to `bare:q` in
//          pipelined windows of 100 (100 appends, then 100 replies). A consumer
//          connection (its own thread) loops
//            XREADGROUP GROUP g c COUNT min(100, C) BLOCK 1000 STREAMS bare:q >
//          "handles" every entry (no-op; records its latency), then writes ONE
//          pipeline: XACK with all ids + XDEL with all ids (+ with --notify one
//          XADD bare:notify MAXLEN ~ 100000 per task) and reads its replies.
//          --concurrency only caps COUNT: handling is single-threaded and the
//          handler is a no-op, so C is "tasks in hand per round trip".
// latency  Same consumer; the producer sends one XADD at a time (waiting for
//          its reply), paced at --rate R tasks/s.
// lua      bench/lua_limit.lua does XADD, XREADGROUP (non-blocking, the only
//          form Redis 7 allows in scripts), XACK, XDEL (+ notify XADD) for one
//          task per call; EVALSHA pipelined in windows of 100 on one
//          connection. --concurrency is not used. Latency is not measured (the
//          task is handled inside the call that enqueues it): lat_* are null.
//
// Timing: `seconds` runs from the first XADD (lua: the first EVALSHA) to the
// moment the last task was handled -- with --notify, to the moment the reply
// to its notification XADD was read; `seconds_acked` always runs to the reply
// of the last XACK/XDEL pipeline (lua: to the last EVALSHA reply).
// Latency: a steady_clock stamp (ns, 8 bytes, native order) heads the payload
// field `p`, padded with 'x' to --payload-bytes (default 16, at least 8);
// latency = consumer's handle time - stamp.
// redis_cpu_us_per_task: INFO CPU used_cpu_sys + used_cpu_user, before the
// first XADD and after the consumer finished, divided by N.
// Keys bare:q and bare:notify are deleted at the start. Any Redis error, a
// task missing, or a task left pending/undeleted is a non-zero exit.

#include <hiredis/hiredis.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef BARE_LUA_PATH
#define BARE_LUA_PATH "bench/lua_limit.lua"
#endif

namespace {

using Steady = std::chrono::steady_clock;

constexpr const char* kQueue = "bare:q";
constexpr const char* kNotify = "bare:notify";
constexpr const char* kGroup = "g";
constexpr const char* kConsumer = "c";
constexpr long kWindow = 100;

struct Args {
    std::string redis;
    std::string scenario;
    long tasks = 0;
    long concurrency = 0;
    bool notify = false;
    long rate = 0;
    long payload = 16;
    std::string lua_file = BARE_LUA_PATH;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "bare_loop: %s\n"
                 "usage: bare_loop --redis redis://HOST:PORT --scenario e2e|latency|lua --tasks N "
                 "--concurrency C [--notify] [--rate R] [--payload-bytes B] [--lua-file PATH]\n",
                 why.c_str());
    std::exit(2);
}

long to_long(const std::string& flag, const char* v) {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') usage(flag + " wants an integer, got '" + v + "'");
    return n;
}

Args parse_args(int argc, char** argv) {
    Args a;
    bool have_c = false;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) usage(flag + " needs a value");
            return argv[++i];
        };
        if (flag == "--redis")
            a.redis = value();
        else if (flag == "--scenario")
            a.scenario = value();
        else if (flag == "--tasks")
            a.tasks = to_long(flag, value());
        else if (flag == "--concurrency") {
            a.concurrency = to_long(flag, value());
            have_c = true;
        } else if (flag == "--notify")
            a.notify = true;
        else if (flag == "--rate")
            a.rate = to_long(flag, value());
        else if (flag == "--payload-bytes")
            a.payload = to_long(flag, value());
        else if (flag == "--lua-file")
            a.lua_file = value();
        else
            usage("unknown argument '" + flag + "'");
    }
    if (a.redis.empty()) usage("--redis is required");
    if (a.scenario != "e2e" && a.scenario != "latency" && a.scenario != "lua")
        usage("--scenario must be e2e, latency or lua");
    if (a.tasks <= 0) usage("--tasks must be positive");
    if (a.scenario != "lua" && (!have_c || a.concurrency <= 0))
        usage("--concurrency must be positive");
    if (a.scenario == "latency" && a.rate <= 0) usage("scenario 'latency' needs --rate R > 0");
    if (a.scenario != "latency" && a.rate != 0) usage("--rate applies to scenario 'latency' only");
    if (a.payload < 0) usage("--payload-bytes must not be negative");
    if (a.payload < 8) a.payload = 8;  // room for the stamp
    return a;
}

struct Endpoint {
    std::string host;
    int port = 6379;
    long db = 0;
};

// redis://HOST[:PORT][/DB] (or HOST[:PORT]); no auth, no TLS, no IPv6 literals.
Endpoint parse_url(const std::string& url) {
    std::string_view s = url;
    constexpr std::string_view scheme = "redis://";
    if (s.substr(0, scheme.size()) == scheme) s.remove_prefix(scheme.size());
    Endpoint e;
    if (auto slash = s.find('/'); slash != std::string_view::npos) {
        std::string db(s.substr(slash + 1));
        if (!db.empty()) e.db = to_long("--redis db", db.c_str());
        s = s.substr(0, slash);
    }
    if (auto colon = s.rfind(':'); colon != std::string_view::npos) {
        std::string port(s.substr(colon + 1));
        long p = to_long("--redis port", port.c_str());
        if (p <= 0 || p > 65535) usage("bad port in --redis");
        e.port = static_cast<int>(p);
        s = s.substr(0, colon);
    }
    if (s.empty() || s.find('@') != std::string_view::npos)
        usage("cannot parse --redis '" + url + "'");
    e.host = std::string(s);
    return e;
}

struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// An argv for redisAppendCommandArgv; views must outlive the append only.
class Argv {
public:
    Argv& clear() {
        ptrs_.clear();
        lens_.clear();
        return *this;
    }
    Argv& add(std::string_view s) {
        ptrs_.push_back(s.data());
        lens_.push_back(s.size());
        return *this;
    }
    Argv& add(const redisReply* r) {
        ptrs_.push_back(r->str);
        lens_.push_back(r->len);
        return *this;
    }
    int argc() const { return static_cast<int>(ptrs_.size()); }
    const char** argv() { return ptrs_.data(); }
    const std::size_t* lens() const { return lens_.data(); }

private:
    std::vector<const char*> ptrs_;
    std::vector<std::size_t> lens_;
};

std::string describe(const redisReply* r) {
    if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_STRING)
        return std::string(r->str, r->len);
    return "reply of type " + std::to_string(r->type);
}

// One blocking hiredis connection. Every failure throws.
class Conn {
public:
    explicit Conn(const Endpoint& e) {
        timeval connect_timeout{2, 0};
        ctx_ = redisConnectWithTimeout(e.host.c_str(), e.port, connect_timeout);
        if (ctx_ == nullptr) throw std::runtime_error("redis: cannot allocate a context");
        if (ctx_->err != 0) {
            std::string why = ctx_->errstr;
            redisFree(ctx_);
            throw std::runtime_error("redis: connect to " + e.host + ":" + std::to_string(e.port) +
                                     ": " + why);
        }
        // Longer than the 1 s BLOCK: a stuck server fails the run instead of hanging it.
        timeval io_timeout{10, 0};
        if (redisSetTimeout(ctx_, io_timeout) != REDIS_OK) fail("set timeout");
        if (e.db != 0) {
            std::string db = std::to_string(e.db);
            ok(Argv().add("SELECT").add(db));
        }
    }
    ~Conn() { redisFree(ctx_); }
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;

    void append(Argv& a) {
        if (redisAppendCommandArgv(ctx_, a.argc(), a.argv(), a.lens()) != REDIS_OK) fail("append");
    }
    // The next reply; an error reply is returned, not thrown.
    Reply get() {
        void* raw = nullptr;
        if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) fail("read");
        return Reply(static_cast<redisReply*>(raw));
    }
    // The next reply; an error reply throws, naming `what`.
    Reply get_ok(const char* what) {
        Reply r = get();
        if (r->type == REDIS_REPLY_ERROR)
            throw std::runtime_error(std::string(what) + ": " + describe(r.get()));
        return r;
    }
    // Sends one command and returns its reply; an error reply throws.
    Reply ok(Argv& a, const char* what = "command") {
        append(a);
        return get_ok(what);
    }

private:
    [[noreturn]] void fail(const char* what) {
        throw std::runtime_error(std::string("redis: ") + what + ": " +
                                 (ctx_->errstr[0] != '\0' ? ctx_->errstr : "unknown error"));
    }
    redisContext* ctx_ = nullptr;
};

long long integer_of(const Reply& r, const char* what) {
    if (r->type != REDIS_REPLY_INTEGER)
        throw std::runtime_error(std::string(what) + ": not an integer");
    return r->integer;
}

// used_cpu_sys + used_cpu_user of the redis-server, in microseconds.
double redis_cpu_us(Conn& c) {
    Reply r = c.ok(Argv().add("INFO").add("CPU"));
    std::string s = describe(r.get());
    double total = 0;
    for (const char* key : {"used_cpu_sys:", "used_cpu_user:"}) {
        auto p = s.find(key);
        if (p == std::string::npos) throw std::runtime_error(std::string("INFO CPU lacks ") + key);
        total += std::strtod(s.c_str() + p + std::strlen(key), nullptr);
    }
    return total * 1e6;
}

long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
        .count();
}

void stamp(std::string& payload) {
    long long ns = now_ns();
    std::memcpy(payload.data(), &ns, sizeof ns);
}

struct ConsumerResult {
    long handled = 0;
    Steady::time_point handled_at{};  // last task handled (+ its notification acknowledged)
    Steady::time_point acked_at{};    // replies of the last XACK/XDEL pipeline read
    std::vector<long long> latency_ns;
    std::string error;
    std::atomic<bool> failed{false};  // set with `error`; stops the producer early
};

void consume(const Endpoint& ep, const Args& a, const std::atomic<bool>& producer_done,
             const std::atomic<bool>& stop, ConsumerResult& out) {
    try {
        Conn c(ep);
        const std::string count = std::to_string(std::min(kWindow, a.concurrency));
        Argv read;
        read.add("XREADGROUP")
            .add("GROUP")
            .add(kGroup)
            .add(kConsumer)
            .add("COUNT")
            .add(count)
            .add("BLOCK")
            .add("1000")
            .add("STREAMS")
            .add(kQueue)
            .add(">");
        Argv ack, del, note;
        out.latency_ns.reserve(static_cast<std::size_t>(a.tasks));
        int idle_rounds = 0;
        while (out.handled < a.tasks && !stop.load(std::memory_order_relaxed)) {
            Reply r = c.ok(read, "XREADGROUP");
            if (r->type == REDIS_REPLY_NIL) {
                // 1 s per round; 10 quiet seconds after the last XADD means loss.
                if (producer_done.load() && ++idle_rounds >= 10)
                    throw std::runtime_error(
                        "consumer: no entries for 10 s after the producer finished");
                continue;
            }
            idle_rounds = 0;
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 1 || r->element[0]->elements != 2)
                throw std::runtime_error("XREADGROUP: unexpected reply shape");
            const redisReply* entries = r->element[0]->element[1];
            ack.clear().add("XACK").add(kQueue).add(kGroup);
            del.clear().add("XDEL").add(kQueue);
            for (std::size_t i = 0; i < entries->elements; ++i) {
                const redisReply* e = entries->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                    e->element[1]->type != REDIS_REPLY_ARRAY)
                    throw std::runtime_error("XREADGROUP: unexpected entry shape");
                const redisReply* id = e->element[0];
                const redisReply* fields = e->element[1];
                const redisReply* p = nullptr;
                for (std::size_t f = 0; f + 1 < fields->elements; f += 2)
                    if (std::string_view(fields->element[f]->str, fields->element[f]->len) == "p")
                        p = fields->element[f + 1];
                if (p == nullptr || p->len < sizeof(long long))
                    throw std::runtime_error("entry " + describe(id) +
                                             " lacks a stamped 'p' field");
                // "handle": a no-op; its only trace is the latency.
                long long stamped = 0;
                std::memcpy(&stamped, p->str, sizeof stamped);
                out.latency_ns.push_back(now_ns() - stamped);
                ++out.handled;
                ack.add(id);
                del.add(id);
            }
            if (out.handled > a.tasks)
                throw std::runtime_error("consumer: more entries than tasks");
            const bool last = out.handled == a.tasks;
            if (last && !a.notify) out.handled_at = Steady::now();

            // One write: XACK, XDEL, and the notifications; then all the replies.
            c.append(ack);
            c.append(del);
            if (a.notify) {
                for (std::size_t i = 0; i < entries->elements; ++i) {
                    note.clear()
                        .add("XADD")
                        .add(kNotify)
                        .add("MAXLEN")
                        .add("~")
                        .add("100000")
                        .add("*")
                        .add("id")
                        .add(entries->element[i]->element[0]);
                    c.append(note);
                }
            }
            const auto n = static_cast<long long>(entries->elements);
            if (integer_of(c.get_ok("XACK"), "XACK") != n)
                throw std::runtime_error("XACK acknowledged fewer ids");
            if (integer_of(c.get_ok("XDEL"), "XDEL") != n)
                throw std::runtime_error("XDEL deleted fewer ids");
            if (a.notify)
                for (long long i = 0; i < n; ++i) (void)c.get_ok("XADD bare:notify");
            if (last) {
                out.acked_at = Steady::now();
                if (a.notify) out.handled_at = out.acked_at;
            }
        }
    } catch (const std::exception& e) {
        out.error = e.what();
        out.failed = true;
    }
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path + " (use --lua-file PATH)");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

double percentile_ms(std::vector<long long>& v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return static_cast<double>(v[k]) / 1e6;
}

struct Outcome {
    double seconds = 0;
    double seconds_acked = 0;
    std::optional<double> p50, p99;
};

// Reset the keys and create the group (before any timing).
void prepare(Conn& admin) {
    (void)admin.ok(Argv().add("DEL").add(kQueue).add(kNotify));
    (void)admin.ok(
        Argv().add("XGROUP").add("CREATE").add(kQueue).add(kGroup).add("$").add("MKSTREAM"));
}

Outcome run_loop(const Endpoint& ep, const Args& a, Conn& producer) {
    std::atomic<bool> producer_done{false}, stop{false};
    ConsumerResult res;
    std::thread consumer(consume, std::cref(ep), std::cref(a), std::cref(producer_done),
                         std::cref(stop), std::ref(res));
    Steady::time_point t0{};
    try {
        std::string payload(static_cast<std::size_t>(a.payload), 'x');
        Argv xadd;
        xadd.add("XADD").add(kQueue).add("*").add("p").add(payload);  // payload's buffer is fixed
        t0 = Steady::now();
        if (a.scenario == "latency") {
            const auto interval = std::chrono::nanoseconds(1'000'000'000LL / a.rate);
            for (long i = 0; i < a.tasks && !res.failed.load(); ++i) {
                std::this_thread::sleep_until(t0 + interval * i);
                stamp(payload);
                (void)producer.ok(xadd, "XADD");
            }
        } else {
            for (long sent = 0; sent < a.tasks && !res.failed.load();) {
                const long w = std::min(kWindow, a.tasks - sent);
                for (long j = 0; j < w; ++j) {
                    stamp(payload);
                    producer.append(xadd);
                }
                for (long j = 0; j < w; ++j) (void)producer.get_ok("XADD");
                sent += w;
            }
        }
    } catch (...) {
        stop = true;
        consumer.join();
        throw;
    }
    producer_done = true;
    consumer.join();
    if (!res.error.empty()) throw std::runtime_error(res.error);
    if (res.handled != a.tasks)
        throw std::runtime_error("handled " + std::to_string(res.handled) + " of " +
                                 std::to_string(a.tasks));
    Outcome o;
    o.seconds = std::chrono::duration<double>(res.handled_at - t0).count();
    o.seconds_acked = std::chrono::duration<double>(res.acked_at - t0).count();
    o.p50 = percentile_ms(res.latency_ns, 0.50);
    o.p99 = percentile_ms(res.latency_ns, 0.99);
    return o;
}

Outcome run_lua(const Args& a, Conn& admin, Conn& conn) {
    const std::string script = read_file(a.lua_file);
    Reply loaded = admin.ok(Argv().add("SCRIPT").add("LOAD").add(script));
    const std::string sha = describe(loaded.get());
    std::string payload(static_cast<std::size_t>(a.payload), 'x');
    Argv call;
    call.add("EVALSHA")
        .add(sha)
        .add("2")
        .add(kQueue)
        .add(kNotify)
        .add(payload)
        .add(kGroup)
        .add(kConsumer)
        .add(a.notify ? "1" : "0");
    long done = 0;
    const auto t0 = Steady::now();
    for (long sent = 0; sent < a.tasks;) {
        const long w = std::min(kWindow, a.tasks - sent);
        for (long j = 0; j < w; ++j) {
            stamp(payload);
            conn.append(call);
        }
        for (long j = 0; j < w; ++j) {
            Reply r = conn.get_ok("EVALSHA");
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                describe(r->element[0]) != describe(r->element[1]))
                throw std::runtime_error("lua: the task read back is not the task added");
            ++done;
        }
        sent += w;
    }
    const double secs = std::chrono::duration<double>(Steady::now() - t0).count();
    if (done != a.tasks)
        throw std::runtime_error("lua: handled " + std::to_string(done) + " of " +
                                 std::to_string(a.tasks));
    return Outcome{secs, secs, std::nullopt, std::nullopt};
}

// Nothing pending, nothing left in the stream, notifications present.
void verify_empty(Conn& admin, const Args& a) {
    if (long long n = integer_of(admin.ok(Argv().add("XLEN").add(kQueue)), "XLEN"); n != 0)
        throw std::runtime_error(std::to_string(n) + " entries left in " + kQueue);
    Reply pending = admin.ok(Argv().add("XPENDING").add(kQueue).add(kGroup));
    if (pending->type != REDIS_REPLY_ARRAY || pending->elements < 1 ||
        pending->element[0]->type != REDIS_REPLY_INTEGER || pending->element[0]->integer != 0)
        throw std::runtime_error(std::string("entries still pending in ") + kQueue);
    if (a.notify) {
        long long want = std::min<long long>(a.tasks, 100000);
        long long n = integer_of(admin.ok(Argv().add("XLEN").add(kNotify)), "XLEN");
        if (n < want)
            throw std::runtime_error(std::string(kNotify) + " holds " + std::to_string(n) +
                                     ", expected >= " + std::to_string(want));
    }
}

std::string json_ms(const std::optional<double>& v) {
    if (!v) return "null";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", *v);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    const Args a = parse_args(argc, argv);
    try {
        const Endpoint ep = parse_url(a.redis);
        Conn admin(ep);
        Conn worker(ep);  // the producer (e2e, latency) or the EVALSHA connection (lua)
        prepare(admin);

        const double cpu_before = redis_cpu_us(admin);
        Outcome o = a.scenario == "lua" ? run_lua(a, admin, worker) : run_loop(ep, a, worker);
        const double cpu_after = redis_cpu_us(admin);
        verify_empty(admin, a);

        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        const bool lua = a.scenario == "lua";
        std::printf(
            "{\"scenario\":\"%s\",\"tasks\":%ld,\"concurrency\":%ld,\"read_count\":%ld,\"notify\":%"
            "s,"
            "\"rate\":%ld,\"payload_bytes\":%ld,\"seconds\":%.4f,\"seconds_acked\":%.4f,\"tasks_"
            "per_s\":%.0f,"
            "\"lat_p50_ms\":%s,\"lat_p99_ms\":%s,%s\"max_rss_kb\":%ld,\"redis_cpu_us_per_task\":%."
            "2f}\n",
            a.scenario.c_str(), a.tasks, a.concurrency, lua ? 1L : std::min(kWindow, a.concurrency),
            a.notify ? "true" : "false", a.rate, a.payload, o.seconds, o.seconds_acked,
            static_cast<double>(a.tasks) / o.seconds, json_ms(o.p50).c_str(),
            json_ms(o.p99).c_str(),
            lua ? "\"lat_note\":\"not measured: the task is handled inside the EVALSHA that adds "
                  "it\","
                : "",
            ru.ru_maxrss, (cpu_after - cpu_before) / static_cast<double>(a.tasks));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bare_loop: FAILED: %s\n", e.what());
        return 1;
    }
}
