// Connection setup: resolving the address, connecting the socket, and the
// handshake (AUTH, SELECT, CLIENT SETNAME, PING) on every connect. The rest of
// the connection's life is in connection.cpp.

#include <algorithm>
#include <cstring>

#include "core/log.hpp"
#include "redis/connection_parts.hpp"

namespace streamfleet::detail::redis {

using conn_detail::ceil_ms;
using conn_detail::run_callback;

// ---- connecting ----

void Connection::begin_connect() {
    auto keep = shared_from_this();
    if (state_ == ConnState::closed) return;
    state_ = ConnState::connecting;
    ++generation_;
    if (endpoint_source_) {
        auto ep = endpoint_source_();
        if (!ep) {
            fail_connection(ep.error(), !ep.error().is_transient());
            return;
        }
        server_.endpoint = std::move(*ep);
    }
    connect_timer_.start(static_cast<std::uint64_t>(opts_.connect_timeout.count()), [this] {
        auto keep = shared_from_this();
        fail_connection(Error(errc::timeout, "connecting to " + where() + " timed out after " +
                                                 std::to_string(opts_.connect_timeout.count()) +
                                                 " ms"));
    });

    const auto& ep = server_.endpoint;
    if (ep.is_unix()) {
        sock_ = new Socket(this);
        uv_pipe_init(rt_.loop(), &sock_->pipe, 0);
        sock_->handle.data = sock_;
        uv_pipe_connect(
            &sock_->connect_req, &sock_->pipe, ep.path.c_str(), [](uv_connect_t* req, int status) {
                auto* s = static_cast<Socket*>(req->handle->data);
                if (!s->owner) return;
                auto keep = s->owner->shared_from_this();
                if (status < 0) {
                    s->owner->fail_connection(Error(
                        errc::connect_failed,
                        "connect to " + s->owner->where() + " failed: " + uv_error_text(status)));
                } else {
                    s->owner->on_connected();
                }
            });
        return;
    }

    sockaddr_storage addr{};
    if (uv_ip4_addr(ep.host.c_str(), ep.port, reinterpret_cast<sockaddr_in*>(&addr)) == 0 ||
        uv_ip6_addr(ep.host.c_str(), ep.port, reinterpret_cast<sockaddr_in6*>(&addr)) == 0) {
        addrs_.clear();
        next_addr_ = 0;
        connect_to(reinterpret_cast<const sockaddr*>(&addr));
        return;
    }

    // A host name: resolve on libuv's thread pool so the loop never blocks.
    resolving_ = new GetAddrInfo{{}, this};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    auto port = std::to_string(ep.port);
    int rc = uv_getaddrinfo(
        rt_.loop(), &resolving_->req,
        [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
            auto* g = reinterpret_cast<GetAddrInfo*>(req);
            Connection* owner = g->owner;
            delete g;
            if (owner) {
                auto keep = owner->shared_from_this();
                owner->resolving_ = nullptr;
                if (status < 0 || !res) {
                    owner->fail_connection(
                        Error(errc::connect_failed,
                              "cannot resolve host '" + owner->server_.endpoint.host +
                                  "': " + uv_error_text(status < 0 ? status : UV_EAI_NONAME)));
                } else {
                    // Keep every address: "localhost" may give ::1 first while
                    // the server listens only on 127.0.0.1.
                    owner->addrs_.clear();
                    for (auto* ai = res; ai; ai = ai->ai_next) {
                        sockaddr_storage a{};
                        std::memcpy(&a, ai->ai_addr,
                                    std::min<std::size_t>(ai->ai_addrlen, sizeof a));
                        owner->addrs_.push_back(a);
                    }
                    owner->next_addr_ = 1;
                    owner->connect_to(reinterpret_cast<const sockaddr*>(&owner->addrs_[0]));
                }
            }
            uv_freeaddrinfo(res);
        },
        ep.host.c_str(), port.c_str(), &hints);
    if (rc < 0) {
        delete resolving_;
        resolving_ = nullptr;
        fail_connection(Error(errc::connect_failed,
                              "cannot resolve host '" + ep.host + "': " + uv_error_text(rc)));
    }
}

void Connection::connect_to(const sockaddr* addr) {
    sock_ = new Socket(this);
    uv_tcp_init(rt_.loop(), &sock_->tcp);
    sock_->handle.data = sock_;
    int rc =
        uv_tcp_connect(&sock_->connect_req, &sock_->tcp, addr, [](uv_connect_t* req, int status) {
            auto* s = static_cast<Socket*>(req->handle->data);
            if (!s->owner) return;
            auto keep = s->owner->shared_from_this();
            Connection* self = s->owner;
            if (status < 0 && self->next_addr_ < self->addrs_.size()) {
                self->release_socket();
                self->connect_to(
                    reinterpret_cast<const sockaddr*>(&self->addrs_[self->next_addr_++]));
            } else if (status < 0) {
                s->owner->fail_connection(
                    Error(errc::connect_failed,
                          "connect to " + s->owner->where() + " failed: " + uv_error_text(status)));
            } else {
                s->owner->on_connected();
            }
        });
    if (rc < 0) {
        fail_connection(
            Error(errc::connect_failed, "connect to " + where() + " failed: " + uv_error_text(rc)));
    }
}

void Connection::on_connected() {
    if (!server_.endpoint.is_unix()) {
        uv_tcp_nodelay(&sock_->tcp, 1);
        uv_tcp_keepalive(&sock_->tcp, 1, 60);
    }
    int rc = uv_read_start(
        &sock_->stream,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
            auto* s = static_cast<Socket*>(h->data);
            *buf = uv_buf_init(s->rbuf.get(), conn_detail::kReadBuffer);
        },
        [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
            auto* s = static_cast<Socket*>(stream->data);
            if (!s->owner) return;
            auto keep = s->owner->shared_from_this();
            s->owner->on_read(static_cast<long>(nread), buf->base);
        });
    if (rc < 0) {
        fail_connection(
            Error(errc::io, "reading from " + where() + " failed: " + uv_error_text(rc)));
        return;
    }

    // The handshake is pipelined in one write; PING comes last so that "ready"
    // means the server answered, not merely that the kernel accepted the
    // connection (a SIGSTOPped server still completes TCP handshakes).
    handshake_left_ = 0;
    const auto& s = server_;
    if (!s.password.empty()) {
        if (!s.username.empty())
            push_internal({"AUTH", s.username, s.password}, "AUTH");
        else
            push_internal({"AUTH", s.password}, "AUTH");
    }
    std::string db = std::to_string(s.db);
    if (s.db != 0) push_internal({"SELECT", db}, "SELECT");
    if (!opts_.client_name.empty())
        push_internal({"CLIENT", "SETNAME", opts_.client_name}, "CLIENT SETNAME");
    push_internal({"PING"}, "PING");
    turn_end_.arm();
}

void Connection::push_internal(std::initializer_list<std::string_view> argv,
                               std::string_view step) {
    append_command(wbuf_, std::span<const std::string_view>(argv.begin(), argv.size()));
    ++handshake_left_;
    // Handshake commands are bounded by connect_timer_, not by their own deadline.
    inflight_.push_back(Inflight{[this, gen = generation_, step](Result<Reply> r) {
                                     handshake_reply(gen, step, std::move(r));
                                 },
                                 Clock::time_point::max(), opts_.connect_timeout});
}

void Connection::handshake_reply(std::uint64_t generation, std::string_view step, Result<Reply> r) {
    if (generation != generation_ || state_ != ConnState::connecting) return;
    if (!r) {
        const auto& msg = r.error().message();
        if (!r.error().is(errc::reply_error)) return;  // the link failed; handled there
        // A loading or busy server will accept us shortly; anything else (bad
        // password, unknown user, bad DB index) will not fix itself.
        auto kind = r.error().reply();
        bool transient = kind == reply_errc::loading || kind == reply_errc::busy ||
                         kind == reply_errc::masterdown || kind == reply_errc::tryagain;
        std::string text = std::string(step) + " rejected by " + where();
        if (step == "AUTH")
            text += " (user '" +
                    (server_.username.empty() ? std::string("default") : server_.username) + "')";
        text += ": " + msg;
        if (kind == reply_errc::noauth) {
            text += " — the server requires a password: redis://[user]:password@host:port";
        }
        fail_connection(
            Error(transient ? errc::connect_failed : errc::auth_failed, std::move(text)),
            !transient);
        return;
    }
    if (--handshake_left_ == 0) become_ready();
}

void Connection::become_ready() {
    connect_timer_.stop();
    state_ = ConnState::ready;
    attempt_ = 0;
    ++connects_;
    for (auto& q : queued_) {
        wbuf_ += q.bytes;
        auto deadline = ordered_deadline(q.deadline);
        inflight_.push_back(Inflight{std::move(q.cb), deadline, q.budget, q.replies});
    }
    queued_.clear();
    turn_end_.arm();
    log().debug("redis {}: connected", where());
    set_state(ConnState::ready, nullptr);
}

}  // namespace streamfleet::detail::redis
