#include "core/error.hpp"

#include "streamfleet/errors.hpp"

namespace streamfleet::detail {

namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "streamfleet"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::timeout: return "timed out";
            case errc::closed: return "closed";
            case errc::connection_lost: return "connection lost";
            case errc::connect_failed: return "connect failed";
            case errc::auth_failed: return "authentication failed";
            case errc::reply_error: return "error reply";
            case errc::protocol: return "protocol error";
            case errc::invalid_argument: return "invalid argument";
            case errc::unsupported: return "unsupported";
            case errc::io: return "i/o error";
        }
        return "unknown streamfleet error " + std::to_string(ev);
    }
};

}  // namespace

const std::error_category& streamfleet_category() noexcept {
    static const Category category;
    return category;
}

void throw_error(const Error& e) {
    if (e.code().category() == streamfleet_category()) {
        switch (static_cast<errc>(e.code().value())) {
            case errc::timeout: throw TimeoutError(e.message());
            case errc::closed: throw ClosedError(e.message());
            case errc::connect_failed: throw ConnectionError(e.message());
            case errc::connection_lost:
            case errc::io: throw IoError(e.message());
            case errc::auth_failed: throw AuthError(e.message());
            case errc::reply_error: throw ReplyError(e.message());
            case errc::protocol: throw ProtoError(e.message());
            case errc::invalid_argument: throw InvalidArgument(e.message());
            case errc::unsupported: throw Unsupported(e.message());
        }
    }
    // Codes from other categories (libuv, the OS) are transport failures.
    throw IoError(e.message());
}

}  // namespace streamfleet::detail
