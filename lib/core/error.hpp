#pragma once

// Internal error model. Inside lib/ failures travel as values (Error, Result<T>)
// because they are produced in libuv/hiredis callbacks, where an exception must
// never propagate. They become the public exception hierarchy (errors.hpp) only
// at the API edge, through throw_error().

#include <cassert>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace streamfleet::detail {

/// Error conditions of streamfleet's own making (the "streamfleet" category).
enum class errc {
    timeout = 1,       // a command or connect attempt exceeded its deadline
    closed,            // the connection/runtime was closed by its owner
    connection_lost,   // the link dropped after the command was written
    connect_failed,    // TCP/unix connect or DNS failed
    auth_failed,       // AUTH or SELECT was rejected during the handshake
    reply_error,       // Redis answered with an error reply
    protocol,          // malformed RESP or an unexpected reply shape
    invalid_argument,  // bad input from the caller (URL, option, argument)
    unsupported,       // recognised but not available (TLS, sentinel, cluster for now)
    io,                // other socket failure
};

const std::error_category& streamfleet_category() noexcept;

/// What an error reply from Redis means, read from its first word once, where
/// the reply arrives (redis/reply_error.cpp), so no caller compares reply text.
/// Every one of these is also an errc::reply_error (Error::is).
enum class reply_errc {
    other = 1,    // ERR and anything not listed
    noscript,     // EVALSHA of a script this node does not have
    nogroup,      // the stream or its consumer group does not exist
    busygroup,    // XGROUP CREATE of a group that exists
    moved,        // Cluster: the slot lives on another node
    ask,          // Cluster: the slot is migrating; ask the other node once
    tryagain,     // Cluster: a multi-key command during a slot migration
    clusterdown,  // Cluster: the cluster cannot serve the slot right now
    crossslot,    // Cluster: the keys of one command span slots
    readonly,     // a replica (after a failover) refused a write
    masterdown,   // a replica lost its master
    loading,      // the server is loading its data set
    busy,         // a script is running too long
    noperm,       // the ACL user may not run the command or touch the key
    noauth,       // authentication required
    oom,          // maxmemory reached with a no-eviction policy
    wrongtype,    // the key holds another type
    script,       // a script raised an error of its own
};

const std::error_category& reply_category() noexcept;

/// The reply_errc of an error reply's text ("NOGROUP No such key ...").
reply_errc classify_reply(std::string_view text) noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), streamfleet_category()};
}
inline std::error_code make_error_code(reply_errc e) noexcept {
    return {static_cast<int>(e), reply_category()};
}

/// A failure with a code to branch on and a message for humans that names the
/// problem (which server, which field, what Redis said).
class Error {
public:
    Error() = default;
    Error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}
    Error(errc code, std::string message) : Error(make_error_code(code), std::move(message)) {}

    const std::error_code& code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }
    /// errc::reply_error matches every error reply, whatever its reply_errc.
    bool is(errc e) const noexcept {
        if (e == errc::reply_error && code_.category() == reply_category()) return true;
        return code_ == make_error_code(e);
    }
    bool is(reply_errc e) const noexcept { return code_ == make_error_code(e); }
    /// The reply's kind; reply_errc{} (0) when this is not an error reply.
    reply_errc reply() const noexcept {
        return code_.category() == reply_category() ? static_cast<reply_errc>(code_.value())
                                                    : reply_errc{};
    }

    /// A link problem: the command may succeed if sent again later, once the
    /// connection, the node or the cluster is back (DESIGN.md "Redis usage").
    /// Everything else is a refusal, which resending will not change.
    bool is_transient() const noexcept;

    /// The same error with context prepended: "ctx: message".
    Error with_context(std::string_view ctx) const {
        return Error(code_, std::string(ctx) + ": " + message_);
    }

private:
    std::error_code code_;
    std::string message_;
};

/// Throws the public exception (errors.hpp) that matches `e`.
[[noreturn]] void throw_error(const Error& e);

/// Either a T or an Error. A small stand-in for C++23 std::expected, which g++ 12
/// does not ship.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    /// The value; throws the matching public exception when this holds an error.
    T& value() & {
        if (!ok()) throw_error(error());
        return std::get<0>(v_);
    }
    const T& value() const& {
        if (!ok()) throw_error(error());
        return std::get<0>(v_);
    }
    T&& value() && {
        if (!ok()) throw_error(error());
        return std::get<0>(std::move(v_));
    }

    T& operator*() & {
        assert(ok());
        return std::get<0>(v_);
    }
    const T& operator*() const& {
        assert(ok());
        return std::get<0>(v_);
    }
    T* operator->() {
        assert(ok());
        return &std::get<0>(v_);
    }
    const T* operator->() const {
        assert(ok());
        return &std::get<0>(v_);
    }

    const Error& error() const& {
        assert(!ok());
        return std::get<1>(v_);
    }

private:
    std::variant<T, Error> v_;
};

/// Result of an operation that yields nothing but may fail.
struct Ok {};
using Status = Result<Ok>;

}  // namespace streamfleet::detail

template <>
struct std::is_error_code_enum<streamfleet::detail::errc> : std::true_type {};
template <>
struct std::is_error_code_enum<streamfleet::detail::reply_errc> : std::true_type {};
