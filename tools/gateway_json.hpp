#pragma once

// The gateway's JSON (gateway.cpp): the reply envelope {"code", "message", "data"}, the checks
// of request fields and query parameters (a refusal names the field), and the shapes of a task's
// state and a topic's counts.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <vector>

#include "http_server.hpp"

namespace cli {

// A request the gateway refuses: its HTTP status and what is wrong with it.
struct HttpError {
    int status;
    std::string message;
};

HttpResponse envelope(int status, int code, const std::string& message, nlohmann::json data);
inline HttpResponse ok(nlohmann::json data = nullptr) {
    return envelope(200, 0, "ok", std::move(data));
}

// Each throws HttpError (400) naming the field or parameter that is missing or of the wrong type.
nlohmann::json parse_object(const HttpRequest& req);
std::string need_string(const nlohmann::json& j, const char* field);
std::optional<std::string> opt_string(const nlohmann::json& j, const char* field);
std::optional<std::int64_t> opt_count(const nlohmann::json& j, const char* field);
std::optional<std::int64_t> query_count(const HttpRequest& req, const std::string& name);
std::string need_query(const HttpRequest& req, const std::string& name);
// A stream entry id ("MS" or "MS-SEQ") for paging; "" when the parameter is absent.
std::string query_entry_id(const HttpRequest& req, const std::string& name);

// The payload as JSON: "body" when it is text, "body_b64" when it is not.
void put_body(nlohmann::json& j, const std::string& data);
nlohmann::json task_json(const streamfleet::TaskInfo& t);
nlohmann::json stats_json(const streamfleet::QueueStats& s);

// Compares without leaking where the first difference is.
bool same_secret(const std::string& a, const std::string& b);
std::vector<std::string> split_path(const std::string& path);

}  // namespace cli
