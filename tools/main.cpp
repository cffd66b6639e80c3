// streamfleet: the command-line tool's entry point; finds the command in the table and runs it.
#include <exception>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"

namespace {

// The command argv[1] (and for a group, argv[2]) names, and where its flags start.
std::pair<const cli::Command*, int> find_command(int argc, char** argv) {
    std::string name = argv[1];
    bool group = false;
    for (const auto& c : cli::commands()) {
        if (c.name != name) continue;
        if (c.sub.empty()) return {&c, 2};
        group = true;
        if (argc >= 3 && c.sub == argv[2]) return {&c, 3};
    }
    if (!group) throw cli::UsageError("unknown command '" + name + "'");
    auto choices = cli::subcommand_choices(name);
    if (argc < 3) throw cli::UsageError(name + " needs " + choices);
    throw cli::UsageError(name + " needs " + choices + ", got '" + argv[2] + "'");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << cli::usage_text();
        return 2;
    }
    std::string sub = argv[1];
    try {
        if (sub == "--help" || sub == "-h" || sub == "help") {
            std::cout << cli::usage_text();
            return 0;
        }
        auto [command, first] = find_command(argc, argv);
        std::vector<std::string> args(argv + first, argv + argc);
        return command->run(cli::Flags::parse(args, cli::flag_spec(*command)));
    } catch (const cli::UsageError& e) {
        std::cerr << "streamfleet: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "streamfleet " << sub << ": " << e.what() << "\n";
        return 1;
    }
}
