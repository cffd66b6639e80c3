// The command table, and the usage text and flag specs derived from it.
#include "commands.hpp"

#include <algorithm>
#include <array>
#include <sstream>
#include <utility>
#include <vector>

namespace cli {

namespace {

// Its flags are a contract (users' scripts depend on them): extend, never rename.
constexpr std::array kCommands = {
    Command{"enqueue", "",
            "[--redis URL] --queue Q [--data TEXT] [--lines] [--track]\n"
            "[--timeout-ms N] [--max-retries N] [--retry-delay-ms N] [--expires-in-ms N]\n"
            "[--delay-ms N | --at UNIX_MS] [--backoff fixed|linear|exponential]\n"
            "[--backoff-max-ms N] [--run-timeout-ms N] [--unique-key K --unique-ttl-ms N]\n"
            "[--spool FILE]",
            cmd_enqueue},
    Command{"cancel", "", "[--redis URL] --queue Q --id ID", cmd_cancel},
    Command{"get", "", "[--redis URL] --queue Q --id ID [--json]", cmd_get},
    Command{"worker", "",
            "[--redis URL] --queue Q [--queue Q2 ...] --id ID [--concurrency N] --exec CMD\n"
            "[--lease-ms N] [--heartbeat-ms N] [--max-deliveries N]",
            cmd_worker},
    Command{"stats", "", "[--redis URL] --queue Q [--json]", cmd_stats},
    Command{"queues", "", "[--redis URL] [--json]", cmd_queues},
    Command{"top", "",
            "[--redis URL] [--queue Q [--queue Q2 ...]] [--interval-ms N] [--iterations N]",
            cmd_top},
    Command{"serve", "",
            "[--redis URL] [--listen ADDR:PORT] [--token-file F] [--queue Q [--queue Q2 ...]]\n"
            "[--id ID] [--ttr-ms N] [--max-popped N] [--max-body-bytes N] [--threads N]\n"
            "[--add-timeout-ms N]",
            cmd_serve},
    Command{"dead", "list", "[--redis URL] --queue Q [--json] [--limit N]", cmd_dead_list},
    Command{"dead", "requeue", "[--redis URL] --queue Q (--id ID | --all)", cmd_dead_requeue},
    Command{"dead", "purge", "[--redis URL] --queue Q", cmd_dead_purge},
};

// Flags every command takes, shown at the end of each synopsis and parsed with its flags.
// --go-compat: the Go streamfleet library's key names (docs/wire-format.md).
constexpr std::string_view kEveryCommand = "[--go-compat]";

std::string synopsis_of(const Command& c) {
    return std::string(c.synopsis) + " " + std::string(kEveryCommand);
}

std::string full_name(const Command& c) {
    return c.sub.empty() ? std::string(c.name) : std::string(c.name) + " " + std::string(c.sub);
}

}  // namespace

std::span<const Command> commands() { return kCommands; }

std::string usage_text() {
    // Names are padded to the longest of their kind (command or subcommand), so
    // the synopses of each kind start in one column.
    auto width = [](bool subcommand) {
        std::size_t w = 0;
        for (const auto& c : kCommands) {
            if (c.sub.empty() != subcommand) w = std::max(w, full_name(c).size());
        }
        return w;
    };
    std::string out = "usage:\n";
    for (const auto& c : kCommands) {
        std::string name = full_name(c);
        std::string head = "  streamfleet " + name;
        head.append(width(!c.sub.empty()) - name.size() + 1, ' ');
        std::istringstream lines{synopsis_of(c)};
        for (std::string line; std::getline(lines, line);) {
            out += head + line + "\n";
            head.assign(head.size(), ' ');  // continuation lines line up under the first
        }
    }
    return out;
}

FlagSpec flag_spec(const Command& c) {
    std::vector<std::string> words;
    std::istringstream in{synopsis_of(c)};
    for (std::string w; in >> w;) words.push_back(w);

    std::vector<std::pair<std::string, bool>> shown;  // each flag as shown, and if it takes a value
    for (std::size_t i = 0; i < words.size(); ++i) {
        std::string_view w = words[i];
        w.remove_prefix(std::min(w.find_first_not_of("[("), w.size()));
        if (!w.starts_with("--")) continue;
        auto close = w.find_first_of("])");
        std::string_view next = i + 1 < words.size() ? std::string_view(words[i + 1]) : "";
        bool placeholder = !next.empty() && next != "|" && next.find_first_of("[(-") != 0;
        shown.emplace_back(w.substr(0, close), close == std::string_view::npos && placeholder);
    }
    FlagSpec spec;
    for (const auto& [name, valued] : shown) {
        auto times = std::count_if(shown.begin(), shown.end(),
                                   [&](const auto& s) { return s.first == name; });
        auto& kind = !valued ? spec.switches : times > 1 ? spec.repeatable : spec.valued;
        if (std::find(kind.begin(), kind.end(), name) == kind.end()) kind.push_back(name);
    }
    return spec;
}

std::string subcommand_choices(std::string_view group) {
    std::vector<std::string_view> subs;
    for (const auto& c : kCommands) {
        if (c.name == group && !c.sub.empty()) subs.push_back(c.sub);
    }
    std::string out;
    for (std::size_t i = 0; i < subs.size(); ++i) {
        if (i > 0) out += i + 1 == subs.size() ? " or " : ", ";
        out += subs[i];
    }
    return out;
}

}  // namespace cli
