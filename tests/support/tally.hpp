#pragma once

// Tally: counts events per key from any thread -- runs per task, deliveries
// per id -- so a test can check each task one by one, not only totals.

#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace streamfleet::test {

class Tally {
public:
    /// Counts one more for `key`; returns its count so far.
    int add(std::string_view key) {
        std::lock_guard lock(m_);
        return ++n_[std::string(key)];
    }
    int of(std::string_view key) const {
        std::lock_guard lock(m_);
        auto it = n_.find(key);
        return it == n_.end() ? 0 : it->second;
    }
    std::map<std::string, int, std::less<>> snapshot() const {
        std::lock_guard lock(m_);
        return n_;
    }
    std::size_t distinct() const {
        std::lock_guard lock(m_);
        return n_.size();
    }
    int total() const {
        std::lock_guard lock(m_);
        int t = 0;
        for (const auto& [_, k] : n_) t += k;
        return t;
    }

private:
    mutable std::mutex m_;
    std::map<std::string, int, std::less<>> n_;
};

}  // namespace streamfleet::test
