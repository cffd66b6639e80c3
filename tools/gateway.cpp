// Gateway: the HTTP/JSON routes of `streamfleet serve` (see gateway.hpp).
#include "gateway.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base64.hpp"
#include "gateway_json.hpp"
#include "json.hpp"

namespace cli {

extern const std::string_view kDashboardHtml;  // dashboard.html, embedded (embed_asset.py)

using nlohmann::json;
using namespace std::chrono_literals;
namespace sf = streamfleet;

Gateway::Gateway(GatewayOptions options) : opts_(std::move(options)) {
    client_ = std::make_unique<sf::Client>(
        sf::ClientOptions{
            .redis = opts_.redis, .prefix = opts_.prefix, .go_compatible = opts_.go_compatible},
        opts_.queues);
    server_ = std::make_unique<sf::Server>(sf::ServerOptions{.redis = opts_.redis,
                                                             .id = opts_.id,
                                                             .prefix = opts_.prefix,
                                                             .concurrency = opts_.max_popped,
                                                             .go_compatible = opts_.go_compatible});
    for (const auto& q : opts_.queues) server_->pull(q);
    server_->start();
    inspector_ = std::make_unique<sf::Inspector>(opts_.redis, opts_.prefix, opts_.go_compatible);
    adds_ = std::make_unique<ReplyDeadlines>(opts_.add_timeout, [ms = opts_.add_timeout.count()](
                                                                    const std::string& id) {
        return error(503, "Redis has not confirmed task " + id + " within " + std::to_string(ms) +
                              " ms; the gateway keeps it buffered and still sends it");
    });
}

Gateway::~Gateway() { shutdown(5s); }

void Gateway::shutdown(std::chrono::milliseconds grace) {
    if (server_) server_->shutdown(grace);
    if (client_) client_->close(grace);
}

HttpResponse Gateway::error(int status, const std::string& message) {
    return envelope(status, status, message, nullptr);
}

// The reply to a request that failed with `e`: the status that fits the error class.
HttpResponse Gateway::response_for(std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (const HttpError& e) {
        return error(e.status, e.message);
    } catch (const sf::InvalidArgument& e) {
        return error(400, e.what());
    } catch (const sf::Duplicate& e) {
        return error(409, e.what());
    } catch (const sf::NotFound& e) {
        return error(404, e.what());
    } catch (const sf::UnknownQueue& e) {
        return error(400, e.what());
    } catch (const sf::Unsupported& e) {
        return error(501, e.what());
    } catch (const sf::QueueFull& e) {
        return error(503, e.what());
    } catch (const sf::IoError& e) {
        return error(503, std::string("Redis: ") + e.what());
    } catch (const sf::Refused& e) {
        return error(503, e.what());
    } catch (const sf::ClosedError& e) {
        return error(503, e.what());
    } catch (const std::exception& e) {
        return error(500, e.what());
    } catch (...) {
        return error(500, "unknown error");
    }
}

void Gateway::handle(HttpRequest& req, HttpReply reply) {
    try {
        // The page holds no data: its API calls carry the token (from ?token= in its URL).
        if (req.path == "/" && req.method == "GET") {
            reply(HttpResponse{200, "text/html; charset=utf-8", std::string(kDashboardHtml), {}});
            return;
        }
        if (!opts_.token.empty() && !same_secret(req.authorization, "Bearer " + opts_.token)) {
            auto r = error(401, "missing or wrong bearer token (Authorization: Bearer ...)");
            r.headers["WWW-Authenticate"] = "Bearer";
            reply(std::move(r));
            return;
        }
        route(req, reply);
    } catch (...) {
        reply(response_for(std::current_exception()));
    }
}

const std::string& Gateway::topic_of(const std::string& name) const {
    auto it = std::find(opts_.queues.begin(), opts_.queues.end(), name);
    if (it == opts_.queues.end()) {
        std::string served;
        for (const auto& q : opts_.queues) served += (served.empty() ? "" : ", ") + q;
        throw HttpError{400, "unknown topic '" + name + "' (this gateway serves: " + served + ")"};
    }
    return *it;
}

void Gateway::route(HttpRequest& req, HttpReply& reply) {
    const auto& p = req.path;
    const bool post = req.method == "POST", get_ = req.method == "GET";
    if (p == "/add" && post) return add(req, reply);
    if (p == "/pop" && post) return pop(req, reply);
    if (p == "/finish" && post) return settle(req, reply, true);
    if (p == "/fail" && post) return settle(req, reply, false);
    if (p == "/cancel" && post) return cancel(req, reply);
    if (p == "/get" && get_)
        return get(topic_of(need_query(req, "topic")), need_query(req, "id"), reply);
    if (p == "/stats" && get_) return stats(req, reply);
    if (p == "/metrics" && get_) return metrics(reply);
    if (p.rfind("/v1/", 0) == 0) return rest(req, reply);
    for (const char* known :
         {"/add", "/pop", "/finish", "/fail", "/cancel", "/get", "/stats", "/metrics"}) {
        if (p == known) throw HttpError{405, "method " + req.method + " not allowed on " + p};
    }
    throw HttpError{404, "no such endpoint: " + req.method + " " + p};
}

void Gateway::add(HttpRequest& req, HttpReply& reply) {
    auto j = parse_object(req);
    const auto& topic = topic_of(need_string(j, "topic"));
    auto body = opt_string(j, "body");
    auto b64 = opt_string(j, "body_b64");
    if (body && b64) throw HttpError{400, "fields 'body' and 'body_b64' exclude each other"};
    if (!body && !b64) throw HttpError{400, "field 'body' (or 'body_b64') is required"};
    std::string data;
    if (b64) {
        auto decoded = base64_decode(*b64);
        if (!decoded) throw HttpError{400, "field 'body_b64' is not valid base64"};
        data = std::move(*decoded);
    } else {
        data = std::move(*body);
    }
    sf::TaskOptions o;
    if (auto id = opt_string(j, "id")) {
        if (id->empty()) throw HttpError{400, "field 'id' is empty"};
        o.id = *id;
    }
    if (auto v = opt_count(j, "delay_ms")) o.delay = std::chrono::milliseconds(*v);
    if (auto v = opt_count(j, "run_at_ms"))
        o.run_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(*v));
    if (auto v = opt_count(j, "ttr_ms")) o.run_timeout = std::chrono::milliseconds(*v);
    if (auto v = opt_count(j, "max_retries")) {
        if (*v > UINT32_MAX) throw HttpError{400, "field 'max_retries' is too large"};
        o.max_retries = static_cast<std::uint32_t>(*v);
    }
    if (auto v = opt_count(j, "retry_delay_ms")) o.retry_delay = std::chrono::milliseconds(*v);
    if (auto v = opt_count(j, "expires_in_ms")) o.expires_in = std::chrono::milliseconds(*v);
    if (auto v = opt_count(j, "retention_ms")) o.retention = std::chrono::milliseconds(*v);
    // Confirmed: the reply says the task is in Redis, so a gateway killed after it loses nothing.
    // Nothing waits meanwhile: the client's loop answers, one pipeline for many adds.
    auto ticket = adds_->keep(reply);
    try {
        auto on_stored = [this, ticket, tp = &topic](const sf::TaskId& id, std::exception_ptr why) {
            auto r = adds_->take(ticket);
            if (!r) return;  // answered by its deadline
            (*r)(why ? response_for(why) : ok({{"id", id}, {"topic", *tp}}));
        };
        adds_->note(ticket, client_->enqueue_async(topic, data, o, std::move(on_stored)));
    } catch (...) {
        adds_->take(ticket);
        throw;
    }
}

void Gateway::pop(HttpRequest& req, HttpReply& reply) {
    auto j = parse_object(req);
    const auto& topic = topic_of(need_string(j, "topic"));
    auto wait = std::chrono::milliseconds(opt_count(j, "timeout_ms").value_or(30'000));
    if (wait > opts_.max_wait) {
        throw HttpError{400, "field 'timeout_ms' is over the gateway's limit of " +
                                 std::to_string(opts_.max_wait.count()) + " ms"};
    }
    auto lease = opts_.ttr;
    if (auto v = opt_count(j, "ttr_ms")) {
        if (*v == 0) throw HttpError{400, "field 'ttr_ms' must be positive"};
        lease = std::chrono::milliseconds(*v);
    }
    // The reply comes from the server's loop when a task is handed over or the wait ends; no
    // thread waits meanwhile.
    server_->pop_async(topic, wait, lease, [reply](std::optional<sf::PoppedTask> t) {
        if (!t) {
            reply(ok(nullptr));
            return;
        }
        json d = {{"id", t->id},
                  {"topic", t->queue},
                  {"retries", t->retries},
                  {"deliveries", t->deliveries},
                  {"ttr_ms", t->lease.count()},
                  {"enqueued_ms", t->enqueued_ms}};
        put_body(d, t->data);
        if (t->deadline) {
            d["expires_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  t->deadline->time_since_epoch())
                                  .count();
        }
        reply(ok(std::move(d)));
    });
}

void Gateway::settle(HttpRequest& req, HttpReply& reply, bool success) {
    auto j = parse_object(req);
    const auto& topic = topic_of(need_string(j, "topic"));
    auto id = need_string(j, "id");
    sf::Outcome outcome = sf::Outcome::success();
    if (!success) {
        auto why = opt_string(j, "error").value_or("failed (no error given)");
        if (why.empty()) why = "failed (no error given)";
        bool dead = false;
        if (auto it = j.find("dead"); it != j.end() && !it->is_null()) {
            if (!it->is_boolean()) throw HttpError{400, "field 'dead' must be true or false"};
            dead = it->get<bool>();
        }
        outcome = dead ? sf::Outcome::dead(why) : sf::Outcome::failure(why);
    }
    server_->settle_async(topic, id, std::move(outcome), [reply, id](bool held) {
        if (held) {
            reply(ok(nullptr));
        } else {
            reply(error(404, "task '" + id +
                                 "' is not popped from this gateway (never popped, settled "
                                 "already, or its ttr ran out)"));
        }
    });
}

void Gateway::cancel(HttpRequest& req, HttpReply& reply) {
    auto j = parse_object(req);
    const auto& topic = topic_of(need_string(j, "topic"));
    auto id = need_string(j, "id");
    auto r = client_->cancel(topic, id);
    reply(ok({{"id", id}, {"was", std::string(sf::to_string(r))}}));
}

void Gateway::get(const std::string& topic, const std::string& id, HttpReply& reply) {
    auto t = client_->get(topic, id);
    if (t.state == sf::TaskState::unknown) {
        throw HttpError{404, "task '" + id + "' not found in topic '" + topic + "'"};
    }
    reply(ok(task_json(t)));
}

void Gateway::stats(HttpRequest& req, HttpReply& reply) {
    // What this gateway's server settled: the rest of a task's life is in Redis, all servers'.
    auto settled = [](const sf::Server::Stats& s) {
        return json{{"completed", s.succeeded}, {"failed", s.failed},   {"retried", s.retried},
                    {"dead", s.dead},           {"expired", s.expired}, {"canceled", s.canceled}};
    };
    std::lock_guard lock(inspector_mutex_);
    if (auto it = req.query.find("topic"); it != req.query.end() && !it->second.empty()) {
        const auto& topic = topic_of(it->second);
        auto d = stats_json(inspector_->stats(topic));
        d["settled_here"] = settled(server_->stats(topic));
        reply(ok(std::move(d)));
        return;
    }
    json topics = json::array();
    for (const auto& q : opts_.queues) topics.push_back(stats_json(inspector_->stats(q)));
    reply(ok({{"topics", std::move(topics)}, {"settled_here", settled(server_->stats())}}));
}

// Prometheus text: the gateway's client (enqueued), its server (settled, durations, latency) and
// the topics' gauges from Redis.
void Gateway::metrics(HttpReply& reply) {
    std::string text = client_->metrics_text() + server_->metrics_text();
    {
        std::lock_guard lock(inspector_mutex_);
        text += inspector_->metrics_text(opts_.queues);
    }
    reply(HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", std::move(text), {}});
}

// /v1/queues[/{q}[/tasks[/{id}] | /dead[/requeue | /purge]]]
void Gateway::rest(HttpRequest& req, HttpReply& reply) {
    auto parts = split_path(req.path);
    const auto& m = req.method;
    if (parts.size() < 2 || parts[1] != "queues")
        throw HttpError{404, "no such endpoint: " + req.path};
    if (parts.size() == 2 && m == "GET") {
        std::lock_guard lock(inspector_mutex_);
        json all = json::array();
        for (const auto& q : opts_.queues) all.push_back(stats_json(inspector_->stats(q)));
        return reply(ok(std::move(all)));
    }
    if (parts.size() < 3) throw HttpError{405, "method " + m + " not allowed on " + req.path};
    const auto& topic = topic_of(parts[2]);
    if (parts.size() == 3 && m == "GET") {
        std::lock_guard lock(inspector_mutex_);
        return reply(ok(stats_json(inspector_->stats(topic))));
    }
    if (parts.size() == 5 && parts[3] == "tasks") {
        if (m == "GET") return get(topic, parts[4], reply);
        if (m == "DELETE") {
            auto r = client_->cancel(topic, parts[4]);
            return reply(ok({{"id", parts[4]}, {"was", std::string(sf::to_string(r))}}));
        }
    }
    if (parts.size() == 4 && parts[3] == "tasks" && m == "POST") {
        auto j = parse_object(req);
        j["topic"] = topic;
        req.body = j.dump();
        return add(req, reply);
    }
    if (parts.size() == 4 && m == "GET" &&
        (parts[3] == "ready" || parts[3] == "delayed" || parts[3] == "pending")) {
        auto limit = static_cast<std::size_t>(
            std::min<std::int64_t>(query_count(req, "limit").value_or(100), 10'000));
        json list = json::array();
        auto after = query_entry_id(req, "after");
        std::lock_guard lock(inspector_mutex_);
        if (parts[3] == "ready") {
            for (const auto& t : inspector_->ready(topic, limit, after)) {
                json e = {{"entry_id", t.entry_id},
                          {"id", t.id},
                          {"retries", t.retries},
                          {"enqueued_ms", t.enqueued_ms}};
                put_body(e, t.data);
                list.push_back(std::move(e));
            }
        } else if (parts[3] == "delayed") {
            auto offset = static_cast<std::size_t>(query_count(req, "offset").value_or(0));
            for (const auto& t : inspector_->delayed(topic, limit, offset)) {
                json e = {
                    {"id", t.id}, {"due_ms", t.due_ms}, {"retries", t.retries}, {"error", t.error}};
                put_body(e, t.data);
                list.push_back(std::move(e));
            }
        } else {
            for (const auto& t : inspector_->pending(topic, limit, after)) {
                list.push_back({{"entry_id", t.entry_id},
                                {"id", t.id},
                                {"server", t.server},
                                {"idle_ms", t.idle_ms},
                                {"deliveries", t.deliveries}});
            }
        }
        return reply(ok(std::move(list)));
    }
    if (parts.size() >= 4 && parts[3] == "dead") {
        std::lock_guard lock(inspector_mutex_);
        if (parts.size() == 4 && m == "GET") {
            auto limit = query_count(req, "limit").value_or(100);
            auto after = query_entry_id(req, "after");
            json list = json::array();
            for (const auto& d :
                 inspector_->dead_letters(topic, static_cast<std::size_t>(limit), after)) {
                json e = {{"entry_id", d.entry_id},     {"id", d.id},
                          {"error", d.error},           {"retries", d.retries},
                          {"died_at_ms", d.died_at_ms}, {"history", d.history}};
                put_body(e, d.data);
                json fields = json::object();
                for (const auto& [f, v] : d.fields) {
                    if (f != "data") fields[f] = valid_utf8(v) ? json(v) : json(base64_encode(v));
                }
                e["fields"] = std::move(fields);
                list.push_back(std::move(e));
            }
            return reply(ok(std::move(list)));
        }
        if (parts.size() == 5 && parts[4] == "requeue" && m == "POST") {
            auto j = req.body.empty() ? json::object() : parse_object(req);
            bool all = false;
            if (auto it = j.find("all"); it != j.end() && !it->is_null()) {
                if (!it->is_boolean()) throw HttpError{400, "field 'all' must be true or false"};
                all = it->get<bool>();
            }
            if (all) return reply(ok({{"requeued", inspector_->requeue_all_dead(topic)}}));
            auto id = need_string(j, "id");
            if (!inspector_->requeue_dead(topic, id))
                throw HttpError{404,
                                "no dead letter of task '" + id + "' in topic '" + topic + "'"};
            return reply(ok({{"requeued", 1}}));
        }
        if ((parts.size() == 5 && parts[4] == "purge" && m == "POST") ||
            (parts.size() == 4 && m == "DELETE")) {
            return reply(ok({{"purged", inspector_->purge_dead(topic)}}));
        }
    }
    throw HttpError{404, "no such endpoint: " + m + " " + req.path};
}

}  // namespace cli
