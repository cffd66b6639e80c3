#pragma once

// A Go-behaving peer: a client and a worker that do what the Go streamfleet
// library (the seed) does on Redis, written from its documented facts only
// (issue 11), not from our wire code, so a test checks our side against them:
//
// - queue stream `streamfleet:` + queue (no braces), consumer group
//   streamfleet-server; a task is the nine v1 fields;
// - notification stream `streamfleet:receiver:` + client id; the notification
//   decoder reads enc_version, task_id, type and REQUIRES err_msg (a Go client
//   crashes on an entry without it: counted here as a crash);
// - client heartbeats in the zset `streamfleet:` + queue + `:receivers`,
//   score = unix ms;
// - a worker renews the idle time of the tasks it runs every 10 s, and re-adds
//   a retry with the nine fields only (unknown fields dropped).

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/test_conn.hpp"
#include "support/worker_options.hpp"

namespace streamfleet::test {

inline constexpr const char* kGoGroup = "streamfleet-server";

inline std::string go_stream(const std::string& queue) { return "streamfleet:" + queue; }
inline std::string go_receivers(const std::string& queue) {
    return "streamfleet:" + queue + ":receivers";
}
inline std::string go_receiver(const std::string& client_id) {
    return "streamfleet:receiver:" + client_id;
}

/// The nine fields of a Go task, in the Go library's order.
inline std::vector<std::string> go_task_fields(const std::map<std::string, std::string>& t) {
    std::vector<std::string> out;
    for (const char* f : {"enc_version", "id", "client_id", "data", "max_retries", "expires_ts",
                          "retry_delay", "send_notif", "retries"}) {
        out.emplace_back(f);
        auto it = t.find(f);
        out.push_back(it == t.end() ? std::string() : it->second);
    }
    return out;
}

struct GoNotification {
    std::string task_id, type, err_msg;
};

/// A Go client: enqueues tasks, beats, and reads its notification stream.
class GoClient {
public:
    GoClient(const std::string& url, std::string queue, std::string id)
        : conn_(url), queue_(std::move(queue)), id_(std::move(id)) {}

    const std::string& id() const { return id_; }

    void beat(std::int64_t at_ms = wall_ms()) {
        conn_.cmd({"ZADD", go_receivers(queue_), std::to_string(at_ms), id_}).value();
    }

    /// XADDs a task of the nine fields; returns its id.
    std::string enqueue(const std::string& data, bool tracked, unsigned max_retries = 0,
                        std::int64_t retry_delay_ms = 0) {
        auto task_id = id_ + "-task-" + std::to_string(++n_);
        std::vector<std::string> argv{"XADD", go_stream(queue_), "*"};
        for (auto& f : go_task_fields({{"enc_version", "1"},
                                       {"id", task_id},
                                       {"client_id", id_},
                                       {"data", data},
                                       {"max_retries", std::to_string(max_retries)},
                                       {"expires_ts", "0"},
                                       {"retry_delay", std::to_string(retry_delay_ms)},
                                       {"send_notif", tracked ? "1" : "0"},
                                       {"retries", "0"}})) {
            argv.push_back(std::move(f));
        }
        conn_.cmd(argv).value();
        return task_id;
    }

    /// Reads what arrived within `block`, decoding as the Go client does.
    std::vector<GoNotification> read(
        std::chrono::milliseconds block = std::chrono::milliseconds(200)) {
        std::vector<GoNotification> out;
        auto res = conn_.cmd({"XREAD", "COUNT", "100", "BLOCK", std::to_string(block.count()),
                              "STREAMS", go_receiver(id_), last_},
                             {.block = block});
        if (!res.ok() || !res->is_array()) return out;
        for (const auto& stream : res->elements()) {
            for (const auto& e : stream[1].elements()) {
                last_ = std::string(e[0].str());
                auto f = entry_fields(e);
                if (!f.count("enc_version") || !f.count("task_id") || !f.count("type") ||
                    !f.count("err_msg")) {
                    ++crashes_;  // the Go decoder fails on this entry
                    continue;
                }
                out.push_back({f["task_id"], f["type"], f["err_msg"]});
            }
        }
        return out;
    }

    /// Entries the Go decoder could not take.
    int crashes() const { return crashes_; }
    TestConn& conn() { return conn_; }

private:
    TestConn conn_;
    std::string queue_, id_;
    std::string last_ = "0";
    int n_ = 0;
    int crashes_ = 0;
};

/// A Go worker on its own thread: reads the queue in the shared group, runs
/// `handler` (an error text fails the run), retries as Go does (the nine fields
/// re-added), acks, and notifies tracked tasks' clients.
class GoWorker {
public:
    using Handler = std::function<std::optional<std::string>(const std::string& data)>;

    GoWorker(const std::string& url, std::string queue, std::string name, Handler handler,
             std::chrono::milliseconds refresh = std::chrono::seconds(10))
        : conn_(url),
          queue_(std::move(queue)),
          name_(std::move(name)),
          handler_(std::move(handler)),
          refresh_(refresh),
          renew_conn_(url) {
        // BUSYGROUP when our server made it first.
        (void)conn_.cmd({"XGROUP", "CREATE", go_stream(queue_), kGoGroup, "0", "MKSTREAM"});
        thread_ = std::thread([this] { loop(); });
        renewer_ = std::thread([this] { renew_loop(); });
    }
    ~GoWorker() { stop(); }

    /// Stops reading; a run in progress finishes first (its handler must return).
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        if (renewer_.joinable()) renewer_.join();
    }

    /// Task ids run, one entry per run.
    std::vector<std::string> runs() const {
        std::lock_guard lock(m_);
        return runs_;
    }
    /// Entries that lacked one of the nine fields.
    int malformed() const { return malformed_; }
    /// Fields of every entry read, beyond the nine (ours carry x_ extensions).
    std::set<std::string> extra_fields() const {
        std::lock_guard lock(m_);
        return extra_;
    }

private:
    void loop() {
        while (!stop_) {
            auto res = conn_.cmd({"XREADGROUP", "GROUP", kGoGroup, name_, "COUNT", "10", "BLOCK",
                                  "100", "STREAMS", go_stream(queue_), ">"},
                                 {.block = std::chrono::milliseconds(100)});
            if (res.ok() && res->is_array()) {
                for (const auto& stream : res->elements()) {
                    for (const auto& e : stream[1].elements()) run(e);
                }
            }
        }
    }

    // Go's renewal: every `refresh_`, the entry being run is claimed again by its own consumer,
    // which resets its idle time -- while this consumer still holds it (a claim would take it
    // back from a peer that took it over).
    void renew_loop() {
        auto next = std::chrono::steady_clock::now() + refresh_;
        while (!stop_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            if (std::chrono::steady_clock::now() < next) continue;
            next += refresh_;
            std::string entry;
            {
                std::lock_guard lock(m_);
                entry = running_;
            }
            if (entry.empty()) continue;
            auto p = renew_conn_.cmd({"XPENDING", go_stream(queue_), kGoGroup, entry, entry, "1"});
            if (!p.ok() || !p->is_array() || p->size() != 1 || (*p)[0][1].str() != name_) continue;
            (void)renew_conn_.cmd(
                {"XCLAIM", go_stream(queue_), kGoGroup, name_, "0", entry, "JUSTID"});
        }
    }

    void run(const detail::redis::Reply& e) {
        auto entry_id = std::string(e[0].str());
        auto f = entry_fields(e);
        std::set<std::string> nine = {"enc_version", "id",          "client_id",
                                      "data",        "max_retries", "expires_ts",
                                      "retry_delay", "send_notif",  "retries"};
        for (const auto& n : nine) {
            if (!f.count(n)) {
                ++malformed_;
                return;
            }
        }
        {
            std::lock_guard lock(m_);
            runs_.push_back(f["id"]);
            running_ = entry_id;
            for (const auto& [k, _] : f) {
                if (!nine.count(k)) extra_.insert(k);
            }
        }
        auto err = handler_(f["data"]);
        {
            std::lock_guard lock(m_);
            running_.clear();
        }
        auto retries = std::stoul(f["retries"]);
        auto max_retries = std::stoul(f["max_retries"]);
        bool notify = f["send_notif"] == "1";
        if (err && (max_retries == 0 || retries < max_retries)) {
            f["retries"] = std::to_string(retries + 1);
            std::vector<std::string> argv{"XADD", go_stream(queue_), "*"};
            for (auto& v : go_task_fields(f)) argv.push_back(std::move(v));
            conn_.cmd(argv).value();
            notify = false;
        }
        conn_.cmd({"XACK", go_stream(queue_), kGoGroup, entry_id}).value();
        conn_.cmd({"XDEL", go_stream(queue_), entry_id}).value();
        if (notify) {
            conn_
                .cmd({"XADD", go_receiver(f["client_id"]), "*", "enc_version", "1", "task_id",
                      f["id"], "type", err ? "error" : "completed", "err_msg", err.value_or("")})
                .value();
        }
    }

    TestConn conn_;
    std::string queue_, name_;
    Handler handler_;
    std::chrono::milliseconds refresh_;
    TestConn renew_conn_;
    mutable std::mutex m_;
    std::string running_;  // the entry id being run, "" between runs
    std::vector<std::string> runs_;
    std::set<std::string> extra_;
    std::atomic<int> malformed_{0};
    std::atomic<bool> stop_{false};
    // Last: started once everything they use exists.
    std::thread thread_;
    std::thread renewer_;
};

}  // namespace streamfleet::test
