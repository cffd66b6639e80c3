// Notes: notifications as plain XADDs, one transaction per client and loop turn.
#include "redis/notes.hpp"

#include <algorithm>
#include <utility>

namespace streamfleet::detail {

void add_note(redis::Block& block, std::string_view receiver,
              std::span<const std::string_view> fields, bool even_if_absent) {
    std::vector<std::string_view> argv{"XADD", receiver};
    if (!even_if_absent) argv.push_back("NOMKSTREAM");
    argv.push_back("*");
    argv.insert(argv.end(), fields.begin(), fields.end());
    block.add(argv);
}

redis::Block note_block(std::string receiver, std::span<const std::string_view> fields,
                        bool even_if_absent) {
    redis::Block b(std::move(receiver));
    add_note(b, b.route(), fields, even_if_absent);
    return b;
}

void Notes::add(const std::string& receiver, std::span<const std::string_view> fields) {
    auto same = std::find_if(blocks_.begin(), blocks_.end(),
                             [&](const redis::Block& b) { return b.route() == receiver; });
    if (same == blocks_.end()) same = blocks_.insert(blocks_.end(), redis::Block(receiver));
    add_note(*same, receiver, fields, even_);
}

}  // namespace streamfleet::detail
