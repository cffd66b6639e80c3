// gateway_bench: `streamfleet serve` under load, as HTTP clients of another language would use it.
// C connections (threads), each one keep-alive connection (a reused libcurl handle): first every
// connection adds its share of N tasks (POST /add), then every connection pops and finishes
// until all N are done (POST /pop, POST /finish). One JSON line: each phase's tasks/s and the
// per-request latency percentiles (a pop+finish pair counts as one).
//
// Usage: gateway_bench --url http://127.0.0.1:PORT --topic Q --tasks N --concurrency C
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
    CURL* h = curl_easy_init();
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    std::string out;
    ~Conn() {
        curl_slist_free_all(headers);
        curl_easy_cleanup(h);
    }
    // POSTs `body`; false on a transport error or a non-200 status.
    bool post(const std::string& url, const std::string& body) {
        out.clear();
        curl_easy_setopt(h, CURLOPT_URL, url.c_str());
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* u) {
            static_cast<std::string*>(u)->append(p, s * n);
            return s * n;
        });
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
        if (curl_easy_perform(h) != CURLE_OK) return false;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        return status == 200;
    }
};

// The "id" of a popped task in `json`, or "" for "data": null.
std::string popped_id(const std::string& json) {
    auto at = json.find("\"id\":\"");
    if (at == std::string::npos) return "";
    at += 6;
    return json.substr(at, json.find('"', at) - at);
}

double pct(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
    std::string url, topic;
    long tasks = 10000, conc = 16;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string f = argv[i], v = argv[i + 1];
        if (f == "--url") url = v;
        else if (f == "--topic") topic = v;
        else if (f == "--tasks") tasks = std::atol(v.c_str());
        else if (f == "--concurrency") conc = std::atol(v.c_str());
    }
    if (url.empty() || topic.empty() || tasks <= 0 || conc <= 0) {
        std::fprintf(stderr, "usage: gateway_bench --url URL --topic Q --tasks N --concurrency C\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const std::string payload(16, 'x');
    std::vector<std::vector<double>> add_lat(static_cast<std::size_t>(conc)),
        pop_lat(static_cast<std::size_t>(conc));
    std::atomic<bool> failed{false};

    auto t0 = Clock::now();
    {
        std::vector<std::thread> ts;
        for (long c = 0; c < conc; ++c) {
            ts.emplace_back([&, c] {
                Conn conn;
                const std::string body = "{\"topic\":\"" + topic + "\",\"body\":\"" + payload + "\"}";
                for (long i = c; i < tasks; i += conc) {
                    auto s = Clock::now();
                    if (!conn.post(url + "/add", body)) {
                        std::fprintf(stderr, "add failed: %s\n", conn.out.c_str());
                        failed = true;
                        return;
                    }
                    add_lat[static_cast<std::size_t>(c)].push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - s).count());
                }
            });
        }
        for (auto& t : ts) t.join();
    }
    auto t1 = Clock::now();
    std::atomic<long> done{0};
    {
        std::vector<std::thread> ts;
        for (long c = 0; c < conc; ++c) {
            ts.emplace_back([&, c] {
                Conn conn;
                const std::string pop = "{\"topic\":\"" + topic + "\",\"timeout_ms\":1000}";
                while (done.load() < tasks && !failed) {
                    auto s = Clock::now();
                    if (!conn.post(url + "/pop", pop)) {
                        std::fprintf(stderr, "pop failed: %s\n", conn.out.c_str());
                        failed = true;
                        return;
                    }
                    auto id = popped_id(conn.out);
                    if (id.empty()) continue;
                    if (!conn.post(url + "/finish",
                                   "{\"topic\":\"" + topic + "\",\"id\":\"" + id + "\"}")) {
                        std::fprintf(stderr, "finish failed: %s\n", conn.out.c_str());
                        failed = true;
                        return;
                    }
                    ++done;
                    pop_lat[static_cast<std::size_t>(c)].push_back(
                        std::chrono::duration<double, std::milli>(Clock::now() - s).count());
                }
            });
        }
        for (auto& t : ts) t.join();
    }
    auto t2 = Clock::now();
    if (failed) return 1;
    std::vector<double> adds, pops;
    for (auto& v : add_lat) adds.insert(adds.end(), v.begin(), v.end());
    for (auto& v : pop_lat) pops.insert(pops.end(), v.begin(), v.end());
    double add_s = std::chrono::duration<double>(t1 - t0).count();
    double pop_s = std::chrono::duration<double>(t2 - t1).count();
    std::printf(
        "{\"bench\":\"gateway\",\"tasks\":%ld,\"concurrency\":%ld,\"add_per_s\":%.0f,"
        "\"add_p50_ms\":%.3f,\"add_p99_ms\":%.3f,\"pop_finish_per_s\":%.0f,"
        "\"pop_finish_p50_ms\":%.3f,\"pop_finish_p99_ms\":%.3f}\n",
        tasks, conc, static_cast<double>(tasks) / add_s, pct(adds, 0.5), pct(adds, 0.99),
        static_cast<double>(done.load()) / pop_s, pct(pops, 0.5), pct(pops, 0.99));
    return 0;
}
