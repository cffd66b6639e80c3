// Prometheus text format: histograms and the exposition writer (see metrics.hpp).
#include "core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace streamfleet::detail {

void Histogram::record(double seconds) noexcept {
    if (!(seconds >= 0)) seconds = 0;  // NaN and clock steps back count as 0
    auto it = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
    counts_[static_cast<std::size_t>(it - kBounds.begin())].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(std::llround(seconds * 1e6)),
                      std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const noexcept {
    Snapshot s;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
        s.counts[i] = counts_[i].load(std::memory_order_relaxed);
        s.count += s.counts[i];
    }
    s.sum = static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
    return s;
}

std::string prom_escape(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

namespace {

std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    char buf[32];
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%.6g", v);
    }
    return buf;
}

}  // namespace

PromText& PromText::family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    return *this;
}

PromText& PromText::sample(std::string_view name, std::string_view label, std::string_view value,
                           double v) {
    out_.append(name);
    if (!label.empty()) {
        out_.append("{").append(label).append("=\"").append(prom_escape(value)).append("\"}");
    }
    out_.append(" ").append(number(v)).append("\n");
    return *this;
}

PromText& PromText::histogram(std::string_view name, std::string_view label, std::string_view value,
                              const Histogram::Snapshot& h) {
    const auto lv = prom_escape(value);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
        cumulative += h.counts[i];
        auto le = i < Histogram::kBounds.size() ? number(Histogram::kBounds[i]) : "+Inf";
        out_.append(name).append("_bucket{").append(label).append("=\"").append(lv);
        out_.append("\",le=\"")
            .append(le)
            .append("\"} ")
            .append(number(static_cast<double>(cumulative)));
        out_.append("\n");
    }
    out_.append(name).append("_sum{").append(label).append("=\"").append(lv).append("\"} ");
    out_.append(number(h.sum)).append("\n");
    out_.append(name).append("_count{").append(label).append("=\"").append(lv).append("\"} ");
    out_.append(number(static_cast<double>(h.count))).append("\n");
    return *this;
}

}  // namespace streamfleet::detail
