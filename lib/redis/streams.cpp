#include "redis/streams.hpp"

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>

namespace streamfleet::detail::redis {

std::optional<StreamEntry> parse_entry(const Reply& entry) {
    const auto* e = entry.as_array();
    if (!e || e->size() != 2) return std::nullopt;
    auto id = (*e)[0].as_string();
    if (!id) return std::nullopt;
    StreamEntry out{*id, {}};
    if (const auto* kv = (*e)[1].as_array()) {
        out.fields.reserve(kv->size() / 2);
        for (std::size_t i = 0; i + 1 < kv->size(); i += 2) {
            auto k = (*kv)[i].as_string();
            auto v = (*kv)[i + 1].as_string();
            if (k && v) out.fields.emplace_back(*k, *v);
        }
    }
    return out;
}

std::size_t for_each_entry(const Reply& reply,
                           const std::function<void(std::string_view, const StreamEntry&)>& fn) {
    std::size_t n = 0;
    const auto* streams = reply.as_array();
    if (!streams) return 0;
    for (const auto& s : *streams) {
        const auto* parts = s.as_array();
        if (!parts || parts->size() != 2) continue;
        auto name = (*parts)[0].as_string();
        const auto* entries = (*parts)[1].as_array();
        if (!name || !entries) continue;
        for (const auto& e : *entries) {
            ++n;
            if (auto parsed = parse_entry(e)) fn(*name, *parsed);
        }
    }
    return n;
}

void ensure_group(Topology& topo, std::string_view key, std::string_view group,
                  std::string_view start_id, std::function<void(Status)> done) {
    topo.send(Route{key}, {"XGROUP", "CREATE", key, group, start_id, "MKSTREAM"},
              [done = std::move(done)](Result<Reply> res) {
                  if (res.ok() || res.error().message().starts_with("BUSYGROUP"))
                      done(Ok{});
                  else
                      done(res.error());
              });
}

std::optional<std::string> next_stream_id(std::string_view id) {
    auto dash = id.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    std::uint64_t ms = 0, seq = 0;
    auto parse = [](std::string_view s, std::uint64_t& out) {
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
        return !s.empty() && ec == std::errc() && p == s.data() + s.size();
    };
    if (!parse(id.substr(0, dash), ms) || !parse(id.substr(dash + 1), seq)) return std::nullopt;
    if (seq == std::numeric_limits<std::uint64_t>::max()) {
        if (ms == std::numeric_limits<std::uint64_t>::max()) return std::nullopt;
        return std::to_string(ms + 1) + "-0";
    }
    return std::to_string(ms) + "-" + std::to_string(seq + 1);
}

}  // namespace streamfleet::detail::redis
