#pragma once

// Reply: an owning, self-contained value for one RESP2 reply. Built directly by
// the hiredis reader (see resp.cpp), so there is no intermediate redisReply.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamfleet::detail::redis {

class Reply {
public:
    enum class Type : std::uint8_t { nil, status, error, integer, string, array };

    Reply() = default;  // nil

    static Reply nil() { return Reply(); }
    static Reply status(std::string s) { return Reply(Type::status, std::move(s)); }
    static Reply error(std::string s) { return Reply(Type::error, std::move(s)); }
    static Reply string(std::string s) { return Reply(Type::string, std::move(s)); }
    static Reply integer(long long v) {
        Reply r;
        r.type_ = Type::integer;
        r.integer_ = v;
        return r;
    }
    static Reply array(std::vector<Reply> elements) {
        Reply r;
        r.type_ = Type::array;
        r.elements_ = std::move(elements);
        return r;
    }

    Type type() const noexcept { return type_; }
    bool is_nil() const noexcept { return type_ == Type::nil; }
    bool is_status() const noexcept { return type_ == Type::status; }
    bool is_error() const noexcept { return type_ == Type::error; }
    bool is_integer() const noexcept { return type_ == Type::integer; }
    bool is_string() const noexcept { return type_ == Type::string; }
    bool is_array() const noexcept { return type_ == Type::array; }

    // Checked accessors: return nullopt when the reply has another type, so
    // code running in loop callbacks can validate shapes without exceptions.

    /// Bulk string or status text.
    std::optional<std::string_view> as_string() const noexcept {
        if (type_ == Type::string || type_ == Type::status) return std::string_view(str_);
        return std::nullopt;
    }
    /// Integer reply, or a bulk string holding a decimal integer.
    std::optional<long long> as_integer() const noexcept;
    /// Array elements.
    const std::vector<Reply>* as_array() const noexcept {
        return type_ == Type::array ? &elements_ : nullptr;
    }

    // Throwing accessors (ProtoError naming the expected and actual type), for
    // synchronous callers such as tools and tests.

    std::string_view str() const;
    long long integer() const;
    const std::vector<Reply>& elements() const;
    const Reply& operator[](std::size_t i) const;
    std::size_t size() const noexcept { return elements_.size(); }

    /// The error text of an error reply ("ERR unknown command ...").
    const std::string& error_text() const noexcept { return str_; }

    /// Raw storage, for builders.
    std::string& mutable_str() noexcept { return str_; }
    std::vector<Reply>& mutable_elements() noexcept { return elements_; }

    /// A readable rendering for logs and test failures, like redis-cli prints.
    std::string debug_string() const;

    bool operator==(const Reply&) const = default;

private:
    Reply(Type t, std::string s) : type_(t), str_(std::move(s)) {}

    Type type_ = Type::nil;
    long long integer_ = 0;
    std::string str_;
    std::vector<Reply> elements_;
};

std::string_view type_name(Reply::Type t) noexcept;

}  // namespace streamfleet::detail::redis
