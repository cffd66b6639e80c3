// The gateway's JSON: envelopes, request checks, task and stats shapes (see gateway_json.hpp).
#include "gateway_json.hpp"

#include <algorithm>
#include <climits>

#include "base64.hpp"
#include "json.hpp"

namespace cli {

using nlohmann::json;
namespace sf = streamfleet;

HttpResponse envelope(int status, int code, const std::string& message, json data) {
    json j = {{"code", code}, {"message", message}, {"data", std::move(data)}};
    // Replacement characters for bytes that are not UTF-8 (in an echoed name, say): the reply
    // stays valid JSON whatever the request held.
    return HttpResponse{status,
                        "application/json",
                        j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                        {}};
}

json parse_object(const HttpRequest& req) {
    if (req.body.empty()) throw HttpError{400, "request body is empty; a JSON object is expected"};
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) throw HttpError{400, "request body is not well-formed JSON"};
    if (!j.is_object()) throw HttpError{400, "request body must be a JSON object"};
    return j;
}

std::optional<std::string> opt_string(const json& j, const char* field) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_string())
        throw HttpError{400, std::string("field '") + field + "' must be a string"};
    return it->get<std::string>();
}

std::string need_string(const json& j, const char* field) {
    auto v = opt_string(j, field);
    if (!v) throw HttpError{400, std::string("field '") + field + "' is required"};
    return std::move(*v);
}

std::optional<std::int64_t> opt_count(const json& j, const char* field) {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
        throw HttpError{400, std::string("field '") + field + "' must be a non-negative integer"};
    }
    return it->get<std::int64_t>();
}

std::optional<std::int64_t> query_count(const HttpRequest& req, const std::string& name) {
    auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    std::int64_t v = 0;
    for (char c : it->second) {
        if (c < '0' || c > '9' || v > (INT64_MAX - 9) / 10)
            throw HttpError{400, "query parameter '" + name + "' must be a non-negative integer"};
        v = v * 10 + (c - '0');
    }
    return v;
}

std::string need_query(const HttpRequest& req, const std::string& name) {
    auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty())
        throw HttpError{400, "query parameter '" + name + "' is required"};
    return it->second;
}

std::string query_entry_id(const HttpRequest& req, const std::string& name) {
    auto it = req.query.find(name);
    if (it == req.query.end()) return {};
    const auto& v = it->second;
    auto digits = [](std::string_view s) {
        return !s.empty() && s.size() <= 20 &&
               std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    auto dash = v.find('-');
    bool good = v.empty() || (dash == std::string::npos
                                  ? digits(v)
                                  : digits(std::string_view(v).substr(0, dash)) &&
                                        digits(std::string_view(v).substr(dash + 1)));
    if (!good) {
        throw HttpError{400, "query parameter '" + name + "' must be an entry id (MS-SEQ), not '" +
                                 v + "'"};
    }
    return v;
}

void put_body(json& j, const std::string& data) {
    if (valid_utf8(data)) {
        j["body"] = data;
    } else {
        j["body"] = nullptr;
        j["body_b64"] = base64_encode(data);
    }
}

json task_json(const sf::TaskInfo& t) {
    return {{"id", t.id},
            {"state", std::string(sf::to_string(t.state))},
            {"retries", t.retries},
            {"error", t.error},
            {"created_ms", t.created_ms},
            {"updated_ms", t.updated_ms},
            {"finished_ms", t.finished_ms},
            {"run_at_ms", t.run_at_ms},
            {"history", t.history}};
}

json stats_json(const sf::QueueStats& s) {
    return {{"topic", s.queue},
            {"delivered", s.delivered},
            {"ready", std::max<std::int64_t>(0, s.stream_length - s.pending)},
            {"delayed", s.delayed},
            {"active", s.pending},
            {"dead", s.dead},
            {"consumers", s.consumers},
            {"servers", s.servers},
            {"clients", s.clients},
            // Ended tasks, all servers', by how (P{Q}:finished).
            {"finished",
             {{"completed", s.completed},
              {"dead", s.dead_total},
              {"expired", s.expired},
              {"canceled", s.canceled}}}};
}

bool same_secret(const std::string& a, const std::string& b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (std::size_t i = 0; i < a.size(); ++i) {
        diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
    }
    return diff == 0;
}

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> parts;
    std::size_t i = 0;
    while (i < path.size()) {
        auto j = path.find('/', i);
        if (j == std::string::npos) j = path.size();
        if (j > i) parts.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    return parts;
}

}  // namespace cli
