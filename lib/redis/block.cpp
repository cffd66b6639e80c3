// Block: plain commands on one slot's keys sent as one MULTI ... EXEC transaction.
#include "redis/block.hpp"

#include "redis/resp.hpp"

namespace streamfleet::detail::redis {

namespace {
constexpr std::string_view kMulti = "*1\r\n$5\r\nMULTI\r\n";
constexpr std::string_view kExec = "*1\r\n$4\r\nEXEC\r\n";
}  // namespace

Block::Block(std::string route) : route_(std::move(route)) {}

void Block::add(std::span<const std::string_view> argv) {
    append_command(body_, argv);
    ++n_;
}

std::string Block::resp() const {
    std::string out;
    out.reserve(kMulti.size() + body_.size() + kExec.size());
    out += kMulti;
    out += body_;
    out += kExec;
    return out;
}

CommandOptions Block::options(CommandOptions base) const {
    base.replies = static_cast<unsigned>(n_ + 2);
    return base;
}

}  // namespace streamfleet::detail::redis
