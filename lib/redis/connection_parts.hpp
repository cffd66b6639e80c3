#pragma once

// Connection internals shared by its two source files: connection.cpp
// (sending, receiving, failure, deadlines, close) and connection_setup.cpp
// (resolving, connecting and the handshake). Not for use outside lib/redis.

#include <uv.h>

#include <memory>
#include <string>

#include "redis/connection.hpp"

namespace streamfleet::detail::redis::conn_detail {

// Replies are fed to the parser in slices: hiredis 0.14 compacts its buffer
// (a memmove of everything unread) every ~1 KiB of consumed input, so feeding a
// whole 64 KiB read at once would copy it dozens of times.
inline constexpr std::size_t kFeedSlice = 8 * 1024;
inline constexpr std::size_t kReadBuffer = 64 * 1024;

/// Runs a reply callback; one that throws is logged, never unwound through
/// libuv's C frames.
void run_callback(ReplyCallback& cb, Result<Reply> result);

/// `d` in whole milliseconds, rounded up, at least 1 (for uv timers).
std::uint64_t ceil_ms(Clock::duration d);

}  // namespace streamfleet::detail::redis::conn_detail

namespace streamfleet::detail::redis {

// The libuv stream plus what its callbacks need. Lives until libuv's close
// callback, which may be after the Connection is gone; `owner` is cleared when
// the Connection lets go of it, and every callback checks it first.
struct Connection::Socket {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    };
    uv_connect_t connect_req{};
    Connection* owner;
    std::unique_ptr<char[]> rbuf;

    explicit Socket(Connection* o) : tcp(), owner(o), rbuf(new char[conn_detail::kReadBuffer]) {}
};

struct Connection::WriteReq {
    uv_write_t req{};
    std::string data;
};

struct Connection::GetAddrInfo {
    uv_getaddrinfo_t req{};
    Connection* owner;
};

}  // namespace streamfleet::detail::redis
