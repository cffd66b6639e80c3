// `streamfleet serve`: the HTTP/JSON gateway (gateway.hpp) until SIGTERM or SIGINT.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "commands.hpp"
#include "gateway.hpp"
#include "shutdown_signals.hpp"

namespace cli {

using namespace std::chrono_literals;

namespace {

std::string read_token(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw UsageError("--token-file " + path + ": cannot read it");
    std::stringstream ss;
    ss << in.rdbuf();
    auto t = ss.str();
    while (!t.empty() &&
           (t.back() == '\n' || t.back() == '\r' || t.back() == ' ' || t.back() == '\t'))
        t.pop_back();
    if (t.empty()) throw UsageError("--token-file " + path + " is empty");
    return t;
}

// "ADDR:PORT", or ":PORT" / "PORT" for 127.0.0.1.
void parse_listen(const std::string& s, HttpOptions& h) {
    auto colon = s.rfind(':');
    std::string addr = colon == std::string::npos ? "" : s.substr(0, colon);
    std::string port = colon == std::string::npos ? s : s.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
        throw UsageError("--listen '" + s + "': the port must be 0-65535");
    }
    h.address = addr.empty() ? "127.0.0.1" : addr;
    h.port = static_cast<std::uint16_t>(std::stoul(port));
}

}  // namespace

int cmd_serve(const Flags& f) {
    GatewayOptions g;
    g.redis = f.redis();
    g.go_compatible = f.on("--go-compat");
    HttpOptions h;
    h.error = &Gateway::error;
    if (auto l = f.get("--listen")) parse_listen(*l, h);
    if (auto t = f.get("--token-file")) g.token = read_token(*t);
    if (auto n = f.number("--ttr-ms")) {
        if (*n == 0) throw UsageError("--ttr-ms must be positive");
        g.ttr = std::chrono::milliseconds(*n);
    }
    if (auto n = f.number("--add-timeout-ms")) {
        if (*n == 0) throw UsageError("--add-timeout-ms must be positive");
        g.add_timeout = std::chrono::milliseconds(*n);
    }
    if (auto n = f.number("--max-popped")) {
        if (*n == 0 || *n > 1'000'000) throw UsageError("--max-popped must be 1-1000000");
        g.max_popped = static_cast<unsigned>(*n);
    }
    if (auto n = f.number("--max-body-bytes")) {
        if (*n == 0) throw UsageError("--max-body-bytes must be positive");
        h.max_body = static_cast<std::size_t>(*n);
    }
    if (auto n = f.number("--threads")) {
        if (*n == 0 || *n > 256) throw UsageError("--threads must be 1-256");
        h.threads = static_cast<unsigned>(*n);
    }
    if (auto it = f.values.find("--queue"); it != f.values.end()) g.queues = it->second;
    if (g.queues.empty()) {
        streamfleet::Inspector inspector(g.redis, g.prefix, g.go_compatible);
        g.queues = inspector.queues();
        if (g.queues.empty()) {
            throw UsageError("no queue found in Redis to serve; name the topics with --queue");
        }
    }
    if (auto id = f.get("--id")) {
        g.id = *id;
    } else {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        g.id = std::string("gateway-") + host + "-" + std::to_string(h.port);
    }

    // Before any thread starts: this one waits for the signals.
    auto sigs = block_shutdown_signals();

    Gateway gateway(g);
    {
        HttpServer http(h, [&gateway](HttpRequest& req, HttpReply reply) {
            gateway.handle(req, std::move(reply));
        });
        std::string topics;
        for (const auto& q : g.queues) topics += (topics.empty() ? "" : ",") + q;
        std::printf("streamfleet serve: listening on http://%s:%u (topics: %s; id %s)\n",
                    h.address.c_str(), static_cast<unsigned>(http.port()), topics.c_str(),
                    g.id.c_str());
        std::fflush(stdout);
        int sig = 0;
        sigwait(&sigs, &sig);
        std::cerr << "streamfleet serve: " << strsignal(sig) << ", shutting down\n";
        // Waiting pops are answered (empty) before the HTTP side stops; popped tasks not
        // finished within the grace go back to their queue.
        gateway.shutdown(5s);
    }
    return 0;
}

}  // namespace cli
