#include "redis/reply.hpp"

#include <charconv>

#include "core/error.hpp"

namespace streamfleet::detail::redis {

std::string_view type_name(Reply::Type t) noexcept {
    switch (t) {
        case Reply::Type::nil:
            return "nil";
        case Reply::Type::status:
            return "status";
        case Reply::Type::error:
            return "error";
        case Reply::Type::integer:
            return "integer";
        case Reply::Type::string:
            return "string";
        case Reply::Type::array:
            return "array";
    }
    return "unknown";
}

namespace {
[[noreturn]] void wrong_type(std::string_view want, const Reply& r) {
    std::string msg = "expected a ";
    msg += want;
    msg += " reply, got ";
    msg += type_name(r.type());
    if (r.is_error()) msg += " '" + r.error_text() + "'";
    throw_error(Error(errc::protocol, std::move(msg)));
}
}  // namespace

std::optional<long long> Reply::as_integer() const noexcept {
    if (type_ == Type::integer) return integer_;
    if (type_ == Type::string || type_ == Type::status) {
        long long v = 0;
        auto [p, ec] = std::from_chars(str_.data(), str_.data() + str_.size(), v);
        if (ec == std::errc() && p == str_.data() + str_.size() && !str_.empty()) return v;
    }
    return std::nullopt;
}

std::string_view Reply::str() const {
    if (auto s = as_string()) return *s;
    wrong_type("string", *this);
}

long long Reply::integer() const {
    if (auto v = as_integer()) return *v;
    wrong_type("integer", *this);
}

const std::vector<Reply>& Reply::elements() const {
    if (type_ != Type::array) wrong_type("array", *this);
    return elements_;
}

const Reply& Reply::operator[](std::size_t i) const {
    const auto& e = elements();
    if (i >= e.size()) {
        throw_error(Error(errc::protocol, "reply index " + std::to_string(i) +
                                              " out of range (array of " +
                                              std::to_string(e.size()) + ")"));
    }
    return e[i];
}

std::string Reply::debug_string() const {
    switch (type_) {
        case Type::nil:
            return "(nil)";
        case Type::status:
            return str_;
        case Type::error:
            return "(error) " + str_;
        case Type::integer:
            return "(integer) " + std::to_string(integer_);
        case Type::string: {
            std::string out = "\"";
            for (unsigned char c : str_) {
                if (c == '"' || c == '\\') {
                    out += '\\';
                    out += static_cast<char>(c);
                } else if (c < 0x20 || c >= 0x7f) {
                    static constexpr char hex[] = "0123456789abcdef";
                    out += "\\x";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += static_cast<char>(c);
                }
            }
            return out + "\"";
        }
        case Type::array: {
            std::string out = "[";
            for (std::size_t i = 0; i < elements_.size(); ++i) {
                if (i) out += ", ";
                out += elements_[i].debug_string();
            }
            return out + "]";
        }
    }
    return "?";
}

}  // namespace streamfleet::detail::redis
