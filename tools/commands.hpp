// The command table: each command's synopsis and handler. The usage text and
// the flags each command accepts both come from it, so they cannot disagree.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "flags.hpp"

namespace cli {

struct Command {
    std::string_view name;  // "enqueue"; for a subcommand, its group ("dead")
    std::string_view sub;   // the subcommand ("list"), or empty
    // As the usage shows it, '\n' between lines. It is also the flag spec: a
    // flag followed by a placeholder takes a value ("--id ID"), one closed by
    // ']' or ')' or followed by another flag or '|' is a switch ("[--json]"),
    // and one shown twice may repeat ("--queue Q [--queue Q2 ...]"). The flags
    // every command takes (--go-compat) are added to it in commands.cpp.
    std::string_view synopsis;
    int (*run)(const Flags&);
};

std::span<const Command> commands();

// The full usage text ("usage:\n" and one entry per command).
std::string usage_text();

FlagSpec flag_spec(const Command& c);

// "list, requeue or purge": the subcommands of `group`, for its error texts.
std::string subcommand_choices(std::string_view group);

int cmd_enqueue(const Flags& f);
int cmd_cancel(const Flags& f);
int cmd_get(const Flags& f);
int cmd_worker(const Flags& f);
int cmd_stats(const Flags& f);
int cmd_serve(const Flags& f);
int cmd_queues(const Flags& f);
int cmd_top(const Flags& f);
int cmd_dead_list(const Flags& f);
int cmd_dead_requeue(const Flags& f);
int cmd_dead_purge(const Flags& f);

}  // namespace cli
