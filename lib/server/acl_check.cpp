// ACL check: the commands a server needs, queued in a discarded MULTI (see acl_check.hpp).

#include "server/acl_check.hpp"

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "core/done_format.hpp"
#include "core/keys.hpp"
#include "core/log.hpp"
#include "redis/connection.hpp"
#include "redis/url.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

struct Probe {
    std::string what;  // the command as the error names it, and who needs it
    std::vector<std::string> argv;
};

// Every command the server sends, directly or inside its scripts, on a key of each kind it
// touches. Arguments only need to pass the arity check: nothing is run.
std::vector<Probe> probes(const ServerOptions& opts, Queues queues) {
    const std::string g(kServerGroup), c = opts.id;
    auto receiver = receiver_key(opts.prefix, "acl-check");
    std::vector<Probe> out{
        {"CLIENT ID (reader)", {"CLIENT", "ID"}},
        {"CLIENT UNBLOCK (reader)", {"CLIENT", "UNBLOCK", "0"}},
        {"XADD (notifications)", {"XADD", receiver, "*", "f", "v"}},
        {"DEL (janitor)", {"DEL", receiver}},
    };
    for (auto& q : queues) {
        const auto& k = q.keys;
        auto task = k.task("acl-check");
        auto bucket = done::bucket_key(k.done(), "acl-check", 0);
        std::vector<Probe> mine{
            {"XGROUP CREATE (reader)", {"XGROUP", "CREATE", k.stream(), g, "0", "MKSTREAM"}},
            {"XREADGROUP (reader)",
             {"XREADGROUP", "GROUP", g, c, "COUNT", "1", "BLOCK", "1", "STREAMS", k.stream(), ">"}},
            {"XREAD (control listener)",
             {"XREAD", "COUNT", "1", "BLOCK", "1", "STREAMS", k.nudge(), k.cancels(), "0", "0"}},
            {"XPENDING (reclaimer, scripts)",
             {"XPENDING", k.stream(), g, "IDLE", "0", "-", "+", "1"}},
            {"XCLAIM (reclaimer, lease keeper)", {"XCLAIM", k.stream(), g, c, "0", "0-1"}},
            {"XACK (outcome writer)", {"XACK", k.stream(), g, "0-1"}},
            {"XDEL (outcome writer)", {"XDEL", k.stream(), "0-1"}},
            {"XADD (retries, promotion)", {"XADD", k.stream(), "*", "f", "v"}},
            {"XADD (dead letters)", {"XADD", k.dead(), "*", "f", "v"}},
            {"XTRIM (janitor)", {"XTRIM", k.dead(), "MAXLEN", "~", "1"}},
            {"XGROUP DELCONSUMER (reclaimer)", {"XGROUP", "DELCONSUMER", k.stream(), g, c}},
            {"ZADD (heartbeat)", {"ZADD", k.servers(), "0", c}},
            {"ZREM (heartbeat)", {"ZREM", k.servers(), c}},
            {"TIME (heartbeat, reclaimer)", {"TIME"}},
            {"SET (heartbeat: id hold)", {"SET", k.servers() + ":" + c, "t", "PX", "1"}},
            {"GET (heartbeat: id hold)", {"GET", k.servers() + ":" + c}},
            {"PTTL (heartbeat: id hold)", {"PTTL", k.servers() + ":" + c}},
            {"DEL (heartbeat: id hold)", {"DEL", k.servers() + ":" + c}},
            {"XINFO CONSUMERS (reclaimer)", {"XINFO", "CONSUMERS", k.stream(), g}},
            {"ZSCORE (reclaimer)", {"ZSCORE", k.servers(), c}},
            {"ZRANGEBYSCORE (reclaimer)", {"ZRANGEBYSCORE", k.servers(), "-inf", "+inf"}},
            {"ZADD (delayed retries)", {"ZADD", k.delayed(), "0", "m"}},
            {"ZRANGE (promoter)", {"ZRANGE", k.delayed(), "0", "0"}},
            {"ZRANGEBYSCORE (promoter)", {"ZRANGEBYSCORE", k.delayed(), "-inf", "+inf"}},
            {"ZREM (promoter)", {"ZREM", k.delayed(), "m"}},
            {"ZRANGEBYSCORE (janitor)", {"ZRANGEBYSCORE", k.clients(), "-inf", "+inf"}},
            {"ZREM (janitor)", {"ZREM", k.clients(), "x"}},
            {"HSET (task records)", {"HSET", task, "f", "v"}},
            {"HDEL (task records)", {"HDEL", task, "f"}},
            {"PEXPIRE (task records)", {"PEXPIRE", task, "1"}},
            {"DEL (task records)", {"DEL", task}},
            {"HDEL (index)", {"HDEL", k.index(), "f"}},
            {"HINCRBY (finished counts)", {"HINCRBY", k.finished(), "completed", "1"}},
            {"XRANGE (retries: the entry's facts)", {"XRANGE", k.stream(), "-", "+"}},
            {"HSET (finished states)", {"HSET", bucket, "f", "v"}},
            {"PEXPIREAT (finished states)", {"PEXPIREAT", bucket, "1"}},
            {"ZADD (finished states)", {"ZADD", k.done(), "0", "m"}},
            {"ZRANGEBYSCORE (janitor: finished states)", {"ZRANGEBYSCORE", k.done(), "-inf", "0"}},
            {"ZREM (janitor: finished states)", {"ZREM", k.done(), "m"}},
            {"DEL (janitor: finished states)", {"DEL", bucket}},
            {"EVALSHA (scripts)", {"EVALSHA", std::string(40, '0'), "1", k.stream()}},
            {"EVAL (scripts)", {"EVAL", "return 1", "1", k.stream()}},
        };
        for (auto& p : mine) out.push_back(std::move(p));
    }
    return out;
}

// The key a probe names, for the error (a user may lack a key pattern, not the command).
std::string key_of(const std::vector<std::string>& argv) {
    const auto& cmd = argv.front();
    if (cmd == "CLIENT" || cmd == "TIME") return "";
    if (cmd == "XINFO") return argv[2];
    if (cmd == "XREADGROUP" || cmd == "XREAD") {
        for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
            if (argv[i] == "STREAMS") return argv[i + 1];
        }
    }
    if (cmd == "XGROUP") return argv[2];
    if (cmd == "EVAL" || cmd == "EVALSHA") return argv[3];
    return argv[1];
}

// One run of the check, on the loop. finish() runs once: with the outcome, or with Ok when the
// caller stopped waiting.
struct Check : std::enable_shared_from_this<Check> {
    std::shared_ptr<r::Connection> conn;
    std::vector<Probe> list;
    std::vector<std::string> refused;
    std::promise<Status> result;
    bool done = false;

    void finish(Status st) {
        if (done) return;
        done = true;
        result.set_value(std::move(st));
        conn->close();
    }

    // The check could not be made; the server starts and meets any refusal at run time.
    void unchecked(const Error& e) {
        if (done) return;
        log().info("server: permissions not checked at start: {}", e.message());
        finish(Ok{});
    }

    void run() {
        auto self = shared_from_this();
        conn->send({"MULTI"}, [self](Result<r::Reply> res) {
            // A handshake refused (bad password, or CLIENT SETNAME not allowed) fails every
            // connection of the server alike: say so now, naming the step.
            if (!res.ok() && res.error().is(errc::auth_failed)) return self->finish(res.error());
            if (!res.ok()) return self->unchecked(res.error());
            self->queue_all();
        });
    }

    void queue_all() {
        auto self = shared_from_this();
        for (std::size_t i = 0; i < list.size(); ++i) {
            std::vector<std::string_view> argv(list[i].argv.begin(), list[i].argv.end());
            conn->send(argv, [self, i](Result<r::Reply> res) {
                if (res.ok()) return;
                if (res.error().is(reply_errc::noperm)) {
                    const auto& p = self->list[i];
                    // Name the key only when the key is what Redis refused.
                    const auto& text = res.error().message();
                    auto key = text.find("keys") != std::string::npos ? key_of(p.argv) : "";
                    self->refused.push_back(p.what + (key.empty() ? "" : " on '" + key + "'") +
                                            ": " + res.error().message());
                } else {
                    log().debug("server: permission probe {} answered: {}", self->list[i].what,
                                res.error().message());
                }
            });
        }
        conn->send({"DISCARD"}, [self](Result<r::Reply> res) {
            if (self->done) return;
            if (!res.ok() && !res.error().is(errc::reply_error)) {
                return self->unchecked(res.error());
            }
            if (self->refused.empty()) return self->finish(Ok{});
            std::string msg = "the Redis user may not run commands this server needs: ";
            for (std::size_t i = 0; i < self->refused.size(); ++i) {
                if (i) msg += "; ";
                msg += self->refused[i];
            }
            self->finish(Error(reply_errc::noperm, std::move(msg)));
        });
    }
};

}  // namespace

Status check_permissions(Runtime& rt, const ServerOptions& opts, Queues queues) {
    auto address = r::parse_url(opts.redis);
    if (!address) return address.error();
    auto bound = opts.command_timeout;
    r::ConnectionOptions co{.command_timeout = bound,
                            .connect_timeout = bound,
                            // Unreachable: give up at once rather than wait for the link.
                            .offline_queue = false,
                            .client_name = "streamfleet-server-check:" + opts.id};
    r::ServerConfig cfg{address->endpoints.front(), address->username, address->password,
                        address->db};
    auto check = std::make_shared<Check>();
    check->list = probes(opts, queues);
    auto fut = check->result.get_future();
    rt.call([&] {
        check->conn = r::Connection::create(rt, cfg, co);
        check->conn->start();
        check->run();
    });
    // The connect and each command are bounded by `bound`; this is a backstop.
    if (fut.wait_for(2 * bound + std::chrono::seconds(1)) != std::future_status::ready) {
        rt.call([&] { check->unchecked(Error(errc::timeout, "no answer from Redis")); });
    }
    return fut.get();
}

}  // namespace streamfleet::detail
