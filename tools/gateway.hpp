// Gateway: the HTTP/JSON API of `streamfleet serve`, on the same Client, Server and Inspector any
// C++ program uses. seqdelay-style endpoints (topic = queue): POST /add, /pop, /finish, /fail,
// /cancel; GET /get, /stats; and versioned REST for the rest: /v1/queues,
// /v1/queues/{q}/tasks/{id}, /v1/queues/{q}/dead (list, requeue, purge); GET /metrics in the
// Prometheus text format. Every JSON reply is {"code", "message", "data"}: code 0 and "ok" on
// success; otherwise the HTTP status as code and a message naming the problem.
//
// A popped task is held by this gateway's Server (pull mode) until /finish or /fail, or until its
// lease (the task's ttr, else --ttr-ms) runs out, which counts as a failed run. Killed, the
// gateway leaves its popped tasks pending in Redis under its server id: a gateway restarted with
// the same id, or any server of the queue, takes them over (docs/gateway.md).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <vector>

#include "http_server.hpp"
#include "reply_deadlines.hpp"

namespace cli {

struct GatewayOptions {
    std::string redis;
    std::string prefix = "streamfleet:";
    bool go_compatible = false;
    std::vector<std::string> queues;  // the topics served
    std::string id;                   // the gateway's server id
    std::string token;                // "" = no authentication
    std::chrono::milliseconds ttr{30'000};
    std::chrono::milliseconds max_wait{300'000};  // the longest /pop long poll
    // How long /add waits for Redis before answering 503 (the task stays buffered and is sent).
    std::chrono::milliseconds add_timeout{10'000};
    unsigned max_popped = 1024;                   // tasks held at once (popped or delivered)
};

class Gateway {
public:
    // Connects and starts the pulling server. @throws what Client/Server throw.
    explicit Gateway(GatewayOptions options);
    ~Gateway();

    // Answers one request (any thread; the reply may come later, from the server's loop).
    void handle(HttpRequest& req, HttpReply reply);
    // The envelope of an error, for requests refused before handle() sees them.
    static HttpResponse error(int status, const std::string& message);
    // The error reply that fits what a request failed with.
    static HttpResponse response_for(std::exception_ptr e);
    // Stops handing out tasks: waiting pops are answered empty; popped tasks may still be
    // finished within `grace`, then go back to their queue.
    void shutdown(std::chrono::milliseconds grace);

private:
    void route(HttpRequest& req, HttpReply& reply);
    void add(HttpRequest& req, HttpReply& reply);
    void pop(HttpRequest& req, HttpReply& reply);
    void settle(HttpRequest& req, HttpReply& reply, bool success);
    void cancel(HttpRequest& req, HttpReply& reply);
    void get(const std::string& topic, const std::string& id, HttpReply& reply);
    void stats(HttpRequest& req, HttpReply& reply);
    void metrics(HttpReply& reply);
    void rest(HttpRequest& req, HttpReply& reply);
    const std::string& topic_of(const std::string& name) const;

    GatewayOptions opts_;
    std::unique_ptr<streamfleet::Client> client_;
    std::unique_ptr<streamfleet::Server> server_;
    std::mutex inspector_mutex_;
    std::unique_ptr<streamfleet::Inspector> inspector_;
    // /add replies waiting for Redis: answered by the client's loop, or 503 after add_timeout.
    std::unique_ptr<ReplyDeadlines> adds_;
};

}  // namespace cli
