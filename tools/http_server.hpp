// HttpServer: HTTP/1.1 (keep-alive) on libmicrohttpd, with replies that may come later from
// another thread. The parsing and the sockets are libmicrohttpd's; this adds the request body
// limit, and suspends a connection while its reply is awaited (a long poll holds no thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

struct MHD_Daemon;

namespace cli {

struct HttpRequest {
    std::string method;  // "GET", "POST", ...
    std::string path;    // without the query
    std::map<std::string, std::string> query;
    std::string authorization;  // the Authorization header, or ""
    std::string body;
};

struct HttpResponse {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::map<std::string, std::string> headers;
};

// Answers one request, exactly once, from any thread, at once or later.
using HttpReply = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest&, HttpReply)>;

struct HttpOptions {
    std::string address = "127.0.0.1";
    std::uint16_t port = 9280;  // 0: any free port (see port())
    std::size_t max_body = std::size_t{1} << 20;
    unsigned threads = 4;  // libmicrohttpd's polling threads
    unsigned idle_timeout_s = 120;
    // The response to a request refused before the handler saw it (a body over max_body).
    std::function<HttpResponse(int status, const std::string& message)> error =
        [](int status, const std::string& message) {
            return HttpResponse{status, "text/plain", message + "\n", {}};
        };
};

class HttpServer {
public:
    // Starts listening and serving; `handler` runs on a polling thread.
    // @throws std::runtime_error naming what failed (bad address, port in use).
    HttpServer(HttpOptions options, HttpHandler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // The port listened on (the one chosen when 0 was asked for).
    std::uint16_t port() const noexcept { return port_; }

    struct Exchange;  // one request's state (http_server.cpp)

    // For the request callbacks of http_server.cpp.
    std::size_t max_body() const noexcept { return opts_.max_body; }
    void dispatch(HttpRequest& req, HttpReply reply) { handler_(req, std::move(reply)); }
    HttpResponse error_response(int status, const std::string& message) const {
        return opts_.error(status, message);
    }

private:
    HttpOptions opts_;
    HttpHandler handler_;
    MHD_Daemon* daemon_ = nullptr;
    std::uint16_t port_ = 0;
};

}  // namespace cli
