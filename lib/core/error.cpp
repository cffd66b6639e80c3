#include "core/error.hpp"

#include "streamfleet/errors.hpp"

namespace streamfleet::detail {

namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "streamfleet"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::timeout:
                return "timed out";
            case errc::closed:
                return "closed";
            case errc::connection_lost:
                return "connection lost";
            case errc::connect_failed:
                return "connect failed";
            case errc::auth_failed:
                return "authentication failed";
            case errc::reply_error:
                return "error reply";
            case errc::protocol:
                return "protocol error";
            case errc::invalid_argument:
                return "invalid argument";
            case errc::unsupported:
                return "unsupported";
            case errc::io:
                return "i/o error";
        }
        return "unknown streamfleet error " + std::to_string(ev);
    }
};

struct ReplyName {
    std::string_view prefix;
    reply_errc code;
    std::string_view meaning;
};

// The first word of each error reply Redis sends that callers branch on.
constexpr ReplyName kReplyNames[] = {
    {"NOSCRIPT", reply_errc::noscript, "script not loaded"},
    {"NOGROUP", reply_errc::nogroup, "no such stream or consumer group"},
    {"BUSYGROUP", reply_errc::busygroup, "consumer group exists"},
    {"MOVED", reply_errc::moved, "slot moved"},
    {"ASK", reply_errc::ask, "slot migrating"},
    {"TRYAGAIN", reply_errc::tryagain, "try again"},
    {"CLUSTERDOWN", reply_errc::clusterdown, "cluster down"},
    {"CROSSSLOT", reply_errc::crossslot, "keys in different slots"},
    {"READONLY", reply_errc::readonly, "read-only replica"},
    {"MASTERDOWN", reply_errc::masterdown, "master down"},
    {"LOADING", reply_errc::loading, "loading"},
    {"BUSY", reply_errc::busy, "busy running a script"},
    {"NOPERM", reply_errc::noperm, "no permission"},
    {"NOAUTH", reply_errc::noauth, "authentication required"},
    {"OOM", reply_errc::oom, "out of memory"},
    {"WRONGTYPE", reply_errc::wrongtype, "wrong type"},
};

class ReplyCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "redis-reply"; }
    std::string message(int ev) const override {
        for (const auto& n : kReplyNames) {
            if (static_cast<int>(n.code) == ev) return std::string(n.meaning);
        }
        if (ev == static_cast<int>(reply_errc::script)) return "script error";
        return "error reply";
    }
};

}  // namespace

const std::error_category& reply_category() noexcept {
    static const ReplyCategory category;
    return category;
}

reply_errc classify_reply(std::string_view text) noexcept {
    auto word = text.substr(0, text.find(' '));
    for (const auto& n : kReplyNames) {
        if (word == n.prefix) return n.code;
    }
    // Errors raised inside a script arrive as "ERR user_script:..." (Redis 7)
    // or "ERR Error running script" (older); a redis.call failure keeps the
    // inner error's own prefix after "ERR ", which is classified above only
    // when it comes first, so look for the known words inside too.
    if (text.find("user_script") != std::string_view::npos ||
        text.find("Error running script") != std::string_view::npos) {
        for (const auto& n : kReplyNames) {
            if (text.find(std::string(n.prefix) + " ") != std::string_view::npos) return n.code;
        }
        return reply_errc::script;
    }
    return reply_errc::other;
}

bool Error::is_transient() const noexcept {
    if (code_.category() == reply_category()) {
        switch (static_cast<reply_errc>(code_.value())) {
            case reply_errc::moved:
            case reply_errc::ask:
            case reply_errc::tryagain:
            case reply_errc::clusterdown:
            case reply_errc::readonly:
            case reply_errc::masterdown:
            case reply_errc::loading:
            case reply_errc::busy:
                return true;
            default:
                return false;
        }
    }
    if (code_.category() == streamfleet_category()) {
        switch (static_cast<errc>(code_.value())) {
            case errc::timeout:
            case errc::connection_lost:
            case errc::connect_failed:
            case errc::io:
                return true;
            default:
                return false;
        }
    }
    return true;  // libuv / OS codes: transport failures
}

const std::error_category& streamfleet_category() noexcept {
    static const Category category;
    return category;
}

void throw_error(const Error& e) {
    if (e.code().category() == streamfleet_category()) {
        switch (static_cast<errc>(e.code().value())) {
            case errc::timeout:
                throw TimeoutError(e.message());
            case errc::closed:
                throw ClosedError(e.message());
            case errc::connect_failed:
                throw ConnectionError(e.message());
            case errc::connection_lost:
            case errc::io:
                throw IoError(e.message());
            case errc::auth_failed:
                throw AuthError(e.message());
            case errc::reply_error:
                throw ReplyError(e.message());
            case errc::protocol:
                throw ProtoError(e.message());
            case errc::invalid_argument:
                throw InvalidArgument(e.message());
            case errc::unsupported:
                throw Unsupported(e.message());
        }
    }
    if (e.code().category() == reply_category()) throw ReplyError(e.message());
    // Codes from other categories (libuv, the OS) are transport failures.
    throw IoError(e.message());
}

}  // namespace streamfleet::detail
