#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace streamfleet::detail {

namespace {

std::shared_ptr<spdlog::logger> make_default() {
    auto logger = std::make_shared<spdlog::logger>(
        "streamfleet", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_level(spdlog::level::warn);
    if (const char* env = std::getenv("STREAMFLEET_LOG")) {
        logger->set_level(spdlog::level::from_str(env));
    }
    return logger;
}

std::mutex g_mutex;
// The shared_ptr keeps a replaced logger alive for callers still holding a
// reference from log(); loggers are few, so never freeing old ones is harmless.
std::shared_ptr<spdlog::logger> g_current;
std::atomic<spdlog::logger*> g_fast{nullptr};

struct Gate {
    std::chrono::steady_clock::time_point last;
    std::uint64_t held = 0;
};
std::mutex g_gate_mutex;
std::unordered_map<std::string, Gate> g_gates;  // guarded by g_gate_mutex
// Keys carry server and client ids, which come and go; past this many, keys
// idle for a minute are forgotten.
constexpr std::size_t kMaxGates = 1024;

}  // namespace

spdlog::logger& log() {
    if (auto* l = g_fast.load(std::memory_order_acquire)) return *l;
    std::lock_guard lock(g_mutex);
    if (!g_current) g_current = make_default();
    g_fast.store(g_current.get(), std::memory_order_release);
    return *g_current;
}

bool log_gate(std::string_view key, std::chrono::milliseconds period, std::uint64_t& suppressed) {
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(g_gate_mutex);
    if (g_gates.size() >= kMaxGates) {
        std::erase_if(g_gates, [&](const auto& kv) {
            return now - kv.second.last > std::chrono::minutes(1);
        });
    }
    auto [it, fresh] = g_gates.try_emplace(std::string(key));
    auto& g = it->second;
    if (!fresh && now - g.last < period) {
        ++g.held;
        return false;
    }
    suppressed = std::exchange(g.held, 0);
    g.last = now;
    return true;
}

void set_logger(std::shared_ptr<spdlog::logger> logger) {
    static std::vector<std::shared_ptr<spdlog::logger>> retired;
    std::lock_guard lock(g_mutex);
    if (g_current) retired.push_back(g_current);
    g_current = logger ? std::move(logger) : make_default();
    g_fast.store(g_current.get(), std::memory_order_release);
}

}  // namespace streamfleet::detail
