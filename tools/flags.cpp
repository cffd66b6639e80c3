// Flag parsing and lookup; the error texts are part of the CLI's contract.
#include "flags.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace cli {

namespace {

bool in(const std::vector<std::string>& set, const std::string& s) {
    return std::find(set.begin(), set.end(), s) != set.end();
}

}  // namespace

Flags Flags::parse(const std::vector<std::string>& args, const FlagSpec& spec) {
    Flags f;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (in(spec.switches, a)) {
            f.switches[a] = true;
        } else if (in(spec.valued, a) || in(spec.repeatable, a)) {
            if (i + 1 >= args.size()) throw UsageError("flag " + a + " needs a value");
            if (!in(spec.repeatable, a) && f.values.count(a)) {
                throw UsageError("flag " + a + " given twice");
            }
            f.values[a].push_back(args[++i]);
        } else {
            throw UsageError("unknown flag '" + a + "'");
        }
    }
    return f;
}

std::optional<std::string> Flags::get(const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second.front();
}

std::string Flags::redis() const {
    if (auto v = get("--redis")) return *v;
    if (const char* env = std::getenv("STREAMFLEET_REDIS_URL"); env && *env) return env;
    return "redis://127.0.0.1:6379";
}

std::string Flags::need(const std::string& name) const {
    auto v = get(name);
    if (!v) throw UsageError("missing required flag " + name);
    return *v;
}

bool Flags::on(const std::string& name) const { return switches.count(name) != 0; }

std::optional<long long> Flags::number(const std::string& name) const {
    auto v = get(name);
    if (!v) return std::nullopt;
    long long out = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
    if (v->empty() || ec != std::errc() || p != v->data() + v->size() || out < 0) {
        throw UsageError("flag " + name + " needs a non-negative integer, got '" + *v + "'");
    }
    return out;
}

}  // namespace cli
