// HttpServer on libmicrohttpd (see http_server.hpp).
#include "http_server.hpp"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>

namespace cli {

// One request: its parts as they arrive, then its response. Shared by the connection (through
// libmicrohttpd's per-request pointer) and by the reply callback, which may outlive the handler.
struct HttpServer::Exchange {
    HttpServer* server = nullptr;
    MHD_Connection* conn = nullptr;
    HttpRequest req;
    bool too_big = false;
    bool dispatched = false;
    std::mutex m;
    std::optional<HttpResponse> response;  // guarded by m
    bool suspended = false;                // guarded by m
};

namespace {

using ExchangePtr = std::shared_ptr<HttpServer::Exchange>;

MHD_Result queue(MHD_Connection* c, const HttpResponse& r) {
    auto* resp = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                                 MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r.content_type.c_str());
    for (const auto& [k, v] : r.headers) MHD_add_response_header(resp, k.c_str(), v.c_str());
    auto ret = MHD_queue_response(c, static_cast<unsigned>(r.status), resp);
    MHD_destroy_response(resp);
    return ret;
}

MHD_Result take_query(void* cls, MHD_ValueKind, const char* key, const char* value) {
    auto* q = static_cast<std::map<std::string, std::string>*>(cls);
    if (key) (*q)[key] = value ? value : "";
    return MHD_YES;
}

}  // namespace

// libmicrohttpd calls this once when the headers are in, once per piece of the body, then once
// more (and once again after a resume) to have a response queued.
static MHD_Result on_request(void* cls, MHD_Connection* c, const char* url, const char* method,
                             const char*, const char* upload, std::size_t* upload_size,
                             void** con_cls) {
    auto* server = static_cast<HttpServer*>(cls);
    if (*con_cls == nullptr) {
        auto ex = std::make_shared<HttpServer::Exchange>();
        ex->server = server;
        ex->conn = c;
        ex->req.method = method;
        ex->req.path = url;
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, &take_query, &ex->req.query);
        if (const char* a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"))
            ex->req.authorization = a;
        *con_cls = new ExchangePtr(std::move(ex));
        return MHD_YES;
    }
    auto ex = *static_cast<ExchangePtr*>(*con_cls);
    auto max_body = server->max_body();
    if (*upload_size > 0) {
        if (!ex->too_big && ex->req.body.size() + *upload_size <= max_body) {
            ex->req.body.append(upload, *upload_size);
        } else if (!ex->too_big) {
            ex->too_big = true;
            ex->req.body.clear();
            ex->req.body.shrink_to_fit();
        }
        *upload_size = 0;
        return MHD_YES;
    }
    {
        std::lock_guard lock(ex->m);
        if (ex->response) return queue(c, *ex->response);
    }
    if (ex->dispatched) return MHD_YES;  // resumed early; the response is on its way
    ex->dispatched = true;
    if (ex->too_big) {
        return queue(c, server->error_response(
                            413, "request body over " + std::to_string(max_body) + " bytes"));
    }
    server->dispatch(ex->req, [ex](HttpResponse r) {
        {
            std::lock_guard lock(ex->m);
            if (ex->response) return;  // answered already
            ex->response = std::move(r);
            if (!ex->suspended) return;  // the handler is still running: it queues this
        }
        MHD_resume_connection(ex->conn);
    });
    std::lock_guard lock(ex->m);
    if (ex->response) return queue(c, *ex->response);
    // Suspended under the lock, so a reply from another thread resumes a suspended connection.
    ex->suspended = true;
    MHD_suspend_connection(c);
    return MHD_YES;
}

static void on_completed(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
    delete static_cast<ExchangePtr*>(*con_cls);
    *con_cls = nullptr;
}

HttpServer::HttpServer(HttpOptions options, HttpHandler handler)
    : opts_(std::move(options)), handler_(std::move(handler)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(opts_.port);
    if (inet_pton(AF_INET, opts_.address.c_str(), &addr.sin_addr) != 1) {
        throw std::runtime_error("listen address '" + opts_.address + "' is not an IPv4 address");
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    daemon_ =
        MHD_start_daemon(flags, opts_.port, nullptr, nullptr, &on_request, this,
                         MHD_OPTION_SOCK_ADDR, reinterpret_cast<const sockaddr*>(&addr),
                         MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(opts_.threads),
                         MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(opts_.idle_timeout_s),
                         MHD_OPTION_NOTIFY_COMPLETED, &on_completed, nullptr, MHD_OPTION_END);
    if (!daemon_) {
        throw std::runtime_error("cannot listen on " + opts_.address + ":" +
                                 std::to_string(opts_.port) + " (in use, or not allowed)");
    }
    const auto* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    port_ = info ? info->port : opts_.port;
}

HttpServer::~HttpServer() {
    if (daemon_) MHD_stop_daemon(daemon_);
}

}  // namespace cli
