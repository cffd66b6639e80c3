#pragma once

// Metrics in the Prometheus text format (version 0.0.4): lock-free histograms that handler
// threads record into, and a writer that emits families with HELP/TYPE lines and escaped labels.
// Shared by Server::metrics_text(), Client::metrics_text() and Inspector::metrics_text().

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace streamfleet::detail {

/// Durations in seconds, bucketed on a fixed 1-2.5-5 ladder from 0.5 ms to 60 s (Prometheus's
/// cumulative buckets are computed when written). Thread-safe; record() is a few relaxed adds.
class Histogram {
public:
    static constexpr std::array<double, 16> kBounds = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    void record(double seconds) noexcept;

    struct Snapshot {
        std::array<std::uint64_t, kBounds.size() + 1> counts{};  // per bucket, +Inf last
        std::uint64_t count = 0;
        double sum = 0;
    };
    Snapshot snapshot() const noexcept;

private:
    std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
    std::atomic<std::uint64_t> sum_us_{0};
};

/// Builds an exposition: family() once per metric name, then its samples.
class PromText {
public:
    /// `type`: counter, gauge or histogram.
    PromText& family(std::string_view name, std::string_view type, std::string_view help);
    /// One sample with one label `label`="value".
    PromText& sample(std::string_view name, std::string_view label, std::string_view value,
                     double v);
    PromText& histogram(std::string_view name, std::string_view label, std::string_view value,
                        const Histogram::Snapshot& h);
    const std::string& text() const noexcept { return out_; }

private:
    std::string out_;
};

/// A label value escaped for the text format (backslash, double quote, newline).
std::string prom_escape(std::string_view v);

}  // namespace streamfleet::detail
