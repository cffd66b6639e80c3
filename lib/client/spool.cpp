// Spool: the client's on-disk journal of accepted, unconfirmed tasks (see spool.hpp).

#include "client/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "client/spool_format.hpp"
#include "core/log.hpp"
#include "streamfleet/codec.hpp"

namespace streamfleet::detail {

namespace {

Error os_error(const std::string& what, const std::string& path, int err, errc code = errc::io) {
    return Error(code, what + " '" + path + "': " + std::strerror(err));
}

Error in_use(const std::string& path) {
    return Error(errc::invalid_argument, "spool '" + path + "' is in use by another client");
}

// The errno of the first failure, or 0.
int write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return 0;
}

std::string task_body(std::string_view queue, const TaskMessage& msg) {
    auto fields = encode(msg);
    std::vector<std::string> parts{std::string(queue)};
    for (auto v : fields.views()) parts.emplace_back(v);
    return encode_msgpack(parts);
}

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    int release() { return std::exchange(fd, -1); }
};

// Opens and locks the file now at `path`. A peer compacting the spool may swap the file between
// our open and our flock; the lock we got is then on a replaced file, so we look again.
Status open_locked(const std::string& path, Fd& out) {
    for (int attempt = 0; attempt < 100; ++attempt) {
        Fd f{::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
        if (f.fd < 0) return os_error("cannot open spool", path, errno, errc::invalid_argument);
        if (::flock(f.fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) return in_use(path);
            return os_error("cannot lock spool", path, errno);
        }
        struct stat held {
        }, now{};
        if (::fstat(f.fd, &held) != 0) return os_error("cannot stat spool", path, errno);
        if (::stat(path.c_str(), &now) == 0 && now.st_dev == held.st_dev &&
            now.st_ino == held.st_ino) {
            out.fd = f.release();
            return Ok{};
        }
    }
    return in_use(path);  // swapped under us again and again: someone holds it
}

Result<std::string> read_all(int fd, const std::string& path) {
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return os_error("cannot read spool", path, errno);
        if (r == 0) return data;
        data.append(buf, static_cast<std::size_t>(r));
    }
}

// The unconfirmed tasks of a parsed file, in acceptance order.
std::vector<Spool::Pending> pending_tasks(const spool::Parsed& parsed, const std::string& path) {
    std::vector<Spool::Pending> tasks;
    std::unordered_set<std::string_view> confirmed;
    for (const auto& r : parsed.records) {
        if (r.kind == spool::kConfirmed) confirmed.insert(r.body);
    }
    for (const auto& r : parsed.records) {
        if (r.kind != spool::kTask) continue;
        try {
            auto parts = decode_msgpack<std::vector<std::string>>(r.body);
            if (parts.empty()) continue;
            std::vector<RawField> fields;
            for (std::size_t i = 1; i + 1 < parts.size(); i += 2)
                fields.emplace_back(parts[i], parts[i + 1]);
            auto m = decode_task(fields);
            if (!m) {
                log().error("spool {}: skipping a corrupt task record: {}", path,
                            m.error().message());
            } else if (!confirmed.count(m->id)) {
                tasks.push_back(Spool::Pending{parts[0], std::move(*m)});
            }
        } catch (const std::exception& e) {
            log().error("spool {}: skipping a corrupt task record: {}", path, e.what());
        }
    }
    return tasks;
}

// Makes a rename in `path`'s directory durable.
void sync_dir(const std::string& path) {
    auto dir = std::filesystem::path(path).parent_path();
    Fd d{::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (d.fd >= 0) ::fsync(d.fd);
}

}  // namespace

Result<std::pair<std::unique_ptr<Spool>, std::vector<Spool::Pending>>> Spool::open(std::string path,
                                                                                   SpoolSync sync) {
    Fd old;
    if (auto st = open_locked(path, old); !st) return st.error();
    auto data = read_all(old.fd, path);
    if (!data) return data.error();
    auto parsed = spool::parse(*data);
    if (parsed.damaged > 0) {
        log().warn(
            "spool {}: dropped {} damaged record(s) ({} bytes); the records after them are kept",
            path, parsed.damaged, parsed.damaged_bytes);
    }
    if (parsed.torn_tail > 0) {
        log().warn("spool {}: cut a torn record of {} bytes at the end", path, parsed.torn_tail);
    }
    auto tasks = pending_tasks(parsed, path);

    // Compact: write what is still unconfirmed to a new file, lock it, and only then swap it in,
    // so the path never names an unlocked spool. `old` keeps its lock until the swap is done.
    std::string fresh;
    for (const auto& t : tasks)
        spool::append_record(fresh, spool::kTask, task_body(t.queue, t.msg));
    std::string tmp = path + ".tmp";
    Fd nfd{::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)};
    if (nfd.fd < 0) return os_error("cannot rewrite spool", tmp, errno);
    if (::flock(nfd.fd, LOCK_EX | LOCK_NB) != 0) return os_error("cannot lock spool", tmp, errno);
    if (int err = write_all(nfd.fd, fresh.data(), fresh.size())) {
        return os_error("cannot rewrite spool", tmp, err);
    }
    if (::fsync(nfd.fd) != 0) return os_error("cannot fsync spool", tmp, errno);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        return os_error("cannot replace spool", path, errno);
    }
    sync_dir(path);
    std::unique_ptr<Spool> spool(new Spool(std::move(path), nfd.release(), sync, fresh.size()));
    for (const auto& t : tasks) spool->unconfirmed_.insert(t.msg.id);
    return std::make_pair(std::move(spool), std::move(tasks));
}

Spool::~Spool() { ::close(fd_); }

Status Spool::write_locked(std::string_view records, bool do_fsync) {
    if (cut_failed_) {
        if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0) {
            return os_error("cannot write spool", path_, errno);
        }
        cut_failed_ = false;
    }
    int err = write_all(fd_, records.data(), records.size());
    if (err == 0 && do_fsync && ::fdatasync(fd_) != 0) err = errno;
    if (err != 0) {
        // Whatever part of the records reached the file goes: they are not accepted.
        if (::ftruncate(fd_, static_cast<off_t>(end_)) != 0) {
            cut_failed_ = true;
            log().error("spool {}: cannot cut a failed write back: {}", path_,
                        std::strerror(errno));
        }
        return os_error("cannot write spool", path_, err);
    }
    end_ += records.size();
    return Ok{};
}

Status Spool::append(std::string_view queue, const TaskMessage& msg) {
    return append_many(queue, std::span<const TaskMessage>(&msg, 1));
}

Status Spool::append_many(std::string_view queue, std::span<const TaskMessage> msgs) {
    std::string records;
    for (const auto& m : msgs) spool::append_record(records, spool::kTask, task_body(queue, m));
    std::lock_guard lock(mutex_);
    if (auto st = write_locked(records, sync_ == SpoolSync::always); !st) return st;
    for (const auto& m : msgs) unconfirmed_.insert(m.id);
    return Ok{};
}

void Spool::confirm(const std::string& task_id) {
    std::lock_guard lock(mutex_);
    if (unconfirmed_.erase(task_id) == 0) return;
    if (unconfirmed_.empty()) {
        // Everything is in Redis: start the file over instead of growing it.
        if (::ftruncate(fd_, 0) == 0) {
            end_ = 0;
            cut_failed_ = false;
        } else {
            log().warn("spool {}: truncate failed: {}", path_, std::strerror(errno));
        }
        return;
    }
    std::string rec;
    spool::append_record(rec, spool::kConfirmed, task_id);
    if (auto st = write_locked(rec, false); !st) {
        log().warn("spool {}: {}", path_, st.error().message());  // costs a resend at worst
    }
}

}  // namespace streamfleet::detail
