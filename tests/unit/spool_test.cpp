// The spool with real files: damaged records, failing writes, crashes mid-append, and the lock
// between two holders. No Redis: a client here points at a port nothing listens on, so what it
// accepts stays in its spool.

#include "client/spool.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "streamfleet/client.hpp"
#include "streamfleet/codec.hpp"
#include "support/redis_server.hpp"

using namespace streamfleet;
using namespace streamfleet::detail;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/sf-spool-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

TaskMessage task(int i, std::size_t size = 16) {
    TaskMessage m;
    char id[32];
    std::snprintf(id, sizeof id, "task-%03d", i);
    m.id = id;
    m.client_id = "client-1";
    m.data = std::string(size, static_cast<char>('a' + i % 26));
    m.enqueued_ts = 1'700'000'000'000 + i;
    return m;
}

using Opened = std::pair<std::unique_ptr<Spool>, std::vector<Spool::Pending>>;

Opened open_ok(const std::string& path) {
    auto r = Spool::open(path, SpoolSync::none);
    REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message()));
    return std::move(*r);
}

std::vector<std::string> ids_of(const std::vector<Spool::Pending>& p) {
    std::vector<std::string> out;
    for (const auto& t : p) out.push_back(t.msg.id);
    return out;
}

std::vector<std::string> ids(std::initializer_list<int> is) {
    std::vector<std::string> out;
    for (int i : is) out.push_back(task(i).id);
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
}

off_t file_size(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_size;
}

// Writes to regular files fail past `bytes` (EFBIG, SIGXFSZ ignored) while alive.
struct FileSizeLimit {
    rlimit old{};
    void (*old_handler)(int);
    explicit FileSizeLimit(off_t bytes) {
        old_handler = ::signal(SIGXFSZ, SIG_IGN);
        REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
        rlimit lim = old;
        lim.rlim_cur = static_cast<rlim_t>(bytes);
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        ::signal(SIGXFSZ, old_handler);
    }
};

// Writes `n` tasks from `first` on, then closes the spool.
void fill(const std::string& path, int first, int n) {
    auto [spool, left] = open_ok(path);
    for (int i = first; i < first + n; ++i) REQUIRE(spool->append("q", task(i)).ok());
}

}  // namespace

TEST_CASE("spool: every task appended and not confirmed comes back, in order, unchanged") {
    TempDir dir;
    auto path = dir.path + "/s";
    {
        auto [spool, left] = open_ok(path);
        CHECK(left.empty());
        for (int i = 0; i < 6; ++i) REQUIRE(spool->append(i % 2 ? "a" : "b", task(i)).ok());
        spool->confirm(task(2).id);
    }
    auto [spool, left] = open_ok(path);
    REQUIRE(ids_of(left) == ids({0, 1, 3, 4, 5}));
    for (const auto& p : left) {
        int i = std::atoi(p.msg.id.c_str() + 5);
        CHECK(p.msg == task(i));
        CHECK(p.queue == (i % 2 ? "a" : "b"));
    }
}

TEST_CASE("spool: a record garbled in the middle is dropped; every record after it is kept") {
    TempDir dir;
    auto path = dir.path + "/s";
    fill(path, 0, 10);
    auto data = read_file(path);
    // One byte of task 5's payload flipped: the record still parses, its checksum does not.
    auto at = data.find(task(5).data);
    REQUIRE(at != std::string::npos);
    data[at + 3] ^= 0x20;
    write_file(path, data);
    auto [spool, left] = open_ok(path);
    CHECK(ids_of(left) == ids({0, 1, 2, 3, 4, 6, 7, 8, 9}));
    for (const auto& p : left) CHECK(p.msg == task(std::atoi(p.msg.id.c_str() + 5)));
}

TEST_CASE("spool: a record cut short in the middle is dropped; every record after it is kept") {
    TempDir dir;
    auto path = dir.path + "/s";
    fill(path, 0, 10);
    auto data = read_file(path);
    // The tail of task 4's record is missing, task 5's record follows at once: what a write
    // that failed half-way leaves when later appends go on after it.
    auto end4 = data.find(task(4).data) + task(4).data.size();
    REQUIRE(end4 != std::string::npos);
    data.erase(end4 - 9, 9);
    write_file(path, data);
    {
        auto [spool, left] = open_ok(path);
        CHECK(ids_of(left) == ids({0, 1, 2, 3, 5, 6, 7, 8, 9}));
        // Garbage at the end (a torn last record) is cut too.
        REQUIRE(spool->append("q", task(10)).ok());
    }
    {
        std::ofstream out(path, std::ios::binary | std::ios::app);
        out << std::string("\x05\x00\x00", 3);
    }
    auto [spool, left] = open_ok(path);
    CHECK(ids_of(left) == ids({0, 1, 2, 3, 5, 6, 7, 8, 9, 10}));
}

TEST_CASE("spool: a write that fails half-way is refused and leaves nothing behind") {
    TempDir dir;
    auto path = dir.path + "/s";
    auto [spool, left] = open_ok(path);
    for (int i = 0; i < 5; ++i) REQUIRE(spool->append("q", task(i)).ok());
    auto good = file_size(path);
    {
        // Room for part of the next record only: "disk full" in the middle of it.
        FileSizeLimit limit(good + 40);
        auto st = spool->append("q", task(5, 4000));
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().message().find(path) != std::string::npos);
        CHECK(file_size(path) == good);  // the half record was cut at once
        // Still full: refused again, still nothing left behind.
        CHECK_FALSE(spool->append("q", task(6, 4000)).ok());
        CHECK(file_size(path) == good);
    }
    // Room again: later appends land after the last good record.
    for (int i = 7; i < 17; ++i) REQUIRE(spool->append("q", task(i)).ok());
    spool.reset();
    auto [again, after] = open_ok(path);
    CHECK(ids_of(after) == ids({0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}));
}

TEST_CASE("spool: append_many takes all of a batch or none of it") {
    TempDir dir;
    auto path = dir.path + "/s";
    auto [spool, left] = open_ok(path);
    REQUIRE(spool->append("q", task(0)).ok());
    auto good = file_size(path);
    std::vector<TaskMessage> batch;
    for (int i = 1; i <= 10; ++i) batch.push_back(task(i, 200));
    {
        FileSizeLimit limit(good + 1000);  // room for about four of the ten
        CHECK_FALSE(spool->append_many("q", batch).ok());
        CHECK(file_size(path) == good);
    }
    REQUIRE(spool->append_many("q", batch).ok());
    spool.reset();
    auto [again, after] = open_ok(path);
    CHECK(ids_of(after) == ids({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST_CASE("spool: a client's enqueue_many refused by the spool leaves none of its tasks there") {
    TempDir dir;
    auto path = dir.path + "/s";
    auto url = "redis://127.0.0.1:" + std::to_string(test::free_port());
    std::vector<std::string> accepted;
    {
        Client c({.redis = url, .spool_path = path, .spool_fsync = false}, {"q"});
        for (int i = 0; i < 3; ++i) accepted.push_back(c.enqueue("q", "one " + std::to_string(i)));
        std::vector<std::string> data(10, std::string(300, 'x'));
        {
            FileSizeLimit limit(file_size(path) + 1500);  // room for some of the ten
            CHECK_THROWS_AS(c.enqueue_many("q", data), IoError);
        }
        for (int i = 0; i < 2; ++i) accepted.push_back(c.enqueue("q", "two " + std::to_string(i)));
        auto more = c.enqueue_many("q", {"x", "y"});
        accepted.insert(accepted.end(), more.begin(), more.end());
        CHECK_FALSE(c.close(100ms));  // nothing reaches Redis: it all stays in the spool
    }
    auto [spool, left] = open_ok(path);
    CHECK(ids_of(left) == accepted);
}

TEST_CASE("spool: a second opener is refused clearly and the first keeps its lock") {
    TempDir dir;
    auto path = dir.path + "/s";
    fill(path, 0, 3);
    auto [first, left] = open_ok(path);
    CHECK(left.size() == 3);
    for (int attempt = 0; attempt < 3; ++attempt) {
        // In this process (a second client, a reopen) ...
        auto second = Spool::open(path, SpoolSync::none);
        REQUIRE_FALSE(second.ok());
        CHECK(second.error().is(errc::invalid_argument));
        CHECK(second.error().message().find("in use by another client") != std::string::npos);
        CHECK(second.error().message().find(path) != std::string::npos);
        // ... and in another one, after the failed attempt closed its descriptor.
        pid_t pid = ::fork();
        if (pid == 0) {
            auto r = Spool::open(path, SpoolSync::none);
            int fd = ::open(path.c_str(), O_RDWR);
            bool locked = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
            ::_exit(r.ok() || locked ? 1 : 0);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    // Another spool in the same directory is another client's: it opens.
    auto [other, none] = open_ok(dir.path + "/other");
    CHECK(none.empty());
    REQUIRE(other->append("q", task(9)).ok());
    REQUIRE(first->append("q", task(3)).ok());
    first.reset();
    auto [again, after] = open_ok(path);
    CHECK(ids_of(after) == ids({0, 1, 2, 3}));
}

TEST_CASE("spool: openers racing in several processes never hold it at the same time") {
    TempDir dir;
    auto path = dir.path + "/s";
    fill(path, 0, 20);  // so that every open rewrites the file
    struct Shared {
        std::atomic<int> holders;
        std::atomic<int> overlaps;
        std::atomic<int> opens;
    };
    void* mem =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem != MAP_FAILED);
    auto* shared = new (mem) Shared{};
    std::vector<pid_t> kids;
    for (int k = 0; k < 4; ++k) {
        pid_t pid = ::fork();
        if (pid == 0) {
            for (int i = 0; i < 150; ++i) {
                auto r = Spool::open(path, SpoolSync::none);
                if (!r.ok()) continue;
                shared->opens.fetch_add(1);
                if (shared->holders.fetch_add(1) != 0) shared->overlaps.fetch_add(1);
                ::usleep(200);
                shared->holders.fetch_sub(1);
            }
            ::_exit(0);
        }
        kids.push_back(pid);
    }
    for (auto pid : kids) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status));
    }
    INFO("opens: ", shared->opens.load());
    CHECK(shared->opens.load() > 0);
    CHECK(shared->overlaps.load() == 0);
    auto [spool, left] = open_ok(path);
    CHECK(left.size() == 20);  // and no holder lost the tasks
    ::munmap(mem, sizeof(Shared));
}

TEST_CASE("spool: a process killed in the middle of an append loses only that task") {
    TempDir dir;
    auto path = dir.path + "/s";
    fill(path, 0, 3);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        // SIGXFSZ at its default kills the process in the write that reaches the limit: a crash
        // in the middle of a record, not between two.
        ::signal(SIGXFSZ, SIG_DFL);
        auto r = Spool::open(path, SpoolSync::none);
        if (!r.ok()) ::_exit(2);
        rlimit lim{};
        ::getrlimit(RLIMIT_FSIZE, &lim);
        lim.rlim_cur = 6000;
        ::setrlimit(RLIMIT_FSIZE, &lim);
        for (int i = 3; i < 1000; ++i) {
            if (!r->first->append("q", task(i, 150)).ok()) ::_exit(3);
            int n = i;
            if (::write(fds[1], &n, sizeof n) != sizeof n) ::_exit(4);
        }
        ::_exit(5);
    }
    ::close(fds[1]);
    std::vector<std::string> accepted = ids({0, 1, 2});
    int n = 0;
    while (::read(fds[0], &n, sizeof n) == sizeof n) accepted.push_back(task(n).id);
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGXFSZ);
    CHECK(file_size(path) == 6000);  // the last record is torn
    CHECK(accepted.size() > 10);
    {
        auto [spool, left] = open_ok(path);
        MESSAGE("appends completed before the crash: ", accepted.size(),
                ", recovered: ", left.size());
        CHECK(ids_of(left) == accepted);
        REQUIRE(spool->append("q", task(2000)).ok());
    }
    accepted.push_back(task(2000).id);
    auto [spool, left] = open_ok(path);
    CHECK(ids_of(left) == accepted);
}

TEST_CASE("spool: a file in the unchecked format of older versions is read and rewritten") {
    TempDir dir;
    auto path = dir.path + "/s";
    std::string old;
    auto record = [&](char kind, const std::string& body) {
        auto len = static_cast<std::uint32_t>(body.size() + 1);
        for (int i = 0; i < 4; ++i) old.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
        old.push_back(kind);
        old += body;
    };
    for (int i = 0; i < 4; ++i) {
        std::vector<std::string> parts{"q"};
        auto m = task(i);
        auto fields = encode(m);  // views into m
        for (auto v : fields.views()) parts.emplace_back(v);
        record('T', encode_msgpack(parts));
    }
    record('A', task(1).id);
    old += std::string("\x30\x00", 2);  // torn
    write_file(path, old);
    {
        auto [spool, left] = open_ok(path);
        CHECK(ids_of(left) == ids({0, 2, 3}));
        for (const auto& p : left) CHECK(p.msg == task(std::atoi(p.msg.id.c_str() + 5)));
    }
    CHECK(read_file(path).substr(0, 4) == "SFr1");  // rewritten in the checked format
    auto [spool, left] = open_ok(path);
    CHECK(ids_of(left) == ids({0, 2, 3}));
}
