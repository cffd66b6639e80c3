// Runs one task's shell command for the worker, payload on stdin.
#pragma once

#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

namespace cli {

// Runs `sh -c cmd` with `data` on stdin and `env` added to the environment;
// SIGTERMs it once `cancel` fires. Returns nullopt on success, else the error
// text (tail of stderr, or how it ended).
std::optional<std::string> run_command(const std::string& cmd, std::string_view data,
                                       const std::vector<std::string>& env,
                                       const std::stop_token& cancel);

}  // namespace cli
