// Flag parsing and lookup, kept apart from argv so an HTTP front end can fill Flags too.
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

// Input the user got wrong: exit 2 on the command line (a 400 over HTTP), unlike
// failures of Redis or of the task, which exit 1.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The flags one command accepts.
struct FlagSpec {
    std::vector<std::string> valued;      // take a value, at most once
    std::vector<std::string> repeatable;  // take a value, any number of times
    std::vector<std::string> switches;    // take no value
};

struct Flags {
    std::map<std::string, std::vector<std::string>> values;
    std::map<std::string, bool> switches;

    static Flags parse(const std::vector<std::string>& args, const FlagSpec& spec);

    std::optional<std::string> get(const std::string& name) const;
    std::string need(const std::string& name) const;
    // --redis, else $STREAMFLEET_REDIS_URL, else redis://127.0.0.1:6379.
    std::string redis() const;
    bool on(const std::string& name) const;
    // A non-negative integer flag.
    std::optional<long long> number(const std::string& name) const;
};

}  // namespace cli
