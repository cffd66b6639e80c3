#pragma once

// Internal error model. Inside lib/ failures travel as values (Error, Result<T>)
// because they are produced in libuv/hiredis callbacks, where an exception must
// never propagate. They become the public exception hierarchy (errors.hpp) only
// at the API edge, through throw_error().

#include <cassert>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace streamfleet::detail {

/// Error conditions of streamfleet's own making (the "streamfleet" category).
enum class errc {
    timeout = 1,      // a command or connect attempt exceeded its deadline
    closed,           // the connection/runtime was closed by its owner
    connection_lost,  // the link dropped after the command was written
    connect_failed,   // TCP/unix connect or DNS failed
    auth_failed,      // AUTH or SELECT was rejected during the handshake
    reply_error,      // Redis answered with an error reply
    protocol,         // malformed RESP or an unexpected reply shape
    invalid_argument, // bad input from the caller (URL, option, argument)
    unsupported,      // recognised but not available (TLS, sentinel, cluster for now)
    io,               // other socket failure
};

const std::error_category& streamfleet_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), streamfleet_category()};
}

/// A failure with a code to branch on and a message for humans that names the
/// problem (which server, which field, what Redis said).
class Error {
public:
    Error() = default;
    Error(std::error_code code, std::string message)
        : code_(code), message_(std::move(message)) {}
    Error(errc code, std::string message) : Error(make_error_code(code), std::move(message)) {}

    const std::error_code& code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }
    bool is(errc e) const noexcept { return code_ == make_error_code(e); }

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
