#include "client/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "streamfleet/codec.hpp"

namespace streamfleet::detail {

namespace {

Error os_error(const std::string& what, const std::string& path, errc code = errc::io) {
    return Error(code, what + " '" + path + "': " + std::strerror(errno));
}

bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

std::string frame(char kind, std::string_view body) {
    std::string out;
    auto len = static_cast<std::uint32_t>(body.size() + 1);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
    out.push_back(kind);
    out.append(body);
    return out;
}

std::string task_body(std::string_view queue, const TaskMessage& msg) {
    auto fields = encode(msg);
    std::vector<std::string> parts{std::string(queue)};
    for (auto v : fields.views()) parts.emplace_back(v);
    return encode_msgpack(parts);
}

}  // namespace

Result<std::pair<std::unique_ptr<Spool>, std::vector<Spool::Pending>>> Spool::open(std::string path,
                                                                                   SpoolSync sync) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return os_error("cannot open spool", path, errc::invalid_argument);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        auto e = errno == EWOULDBLOCK ? Error(errc::invalid_argument,
                                              "spool '" + path + "' is in use by another client")
                                      : os_error("cannot lock spool", path);
        ::close(fd);
        return e;
    }
    // Read every complete record.
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t r = ::read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            auto e = os_error("cannot read spool", path);
            ::close(fd);
            return e;
        }
        if (r == 0) break;
        data.append(buf, static_cast<std::size_t>(r));
    }
    std::vector<Pending> tasks;
    std::unordered_set<std::string> confirmed;
    std::size_t pos = 0, torn = 0;
    while (pos + 5 <= data.size()) {
        std::uint32_t len = 0;
        for (int i = 0; i < 4; ++i)
            len |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[pos + i])) << (8 * i);
        if (len == 0 || pos + 4 + len > data.size()) break;
        char kind = data[pos + 4];
        std::string_view body(data.data() + pos + 5, len - 1);
        pos += 4 + len;
        if (kind == 'A') {
            confirmed.emplace(body);
        } else if (kind == 'T') {
            try {
                auto parts = decode_msgpack<std::vector<std::string>>(body);
                if (parts.empty()) continue;
                std::vector<RawField> fields;
                for (std::size_t i = 1; i + 1 < parts.size(); i += 2)
                    fields.emplace_back(parts[i], parts[i + 1]);
                auto m = decode_task(fields);
                if (m)
                    tasks.push_back(Pending{parts[0], std::move(*m)});
                else
                    log().error("spool {}: skipping a corrupt task record: {}", path,
                                m.error().message());
            } catch (const std::exception& e) {
                log().error("spool {}: skipping a corrupt task record: {}", path, e.what());
            }
        }
    }
    torn = data.size() - pos;
    if (torn > 0) log().warn("spool {}: ignoring a torn record of {} bytes at the end", path, torn);
    std::erase_if(tasks, [&](const Pending& p) { return confirmed.count(p.msg.id) != 0; });

    // Compact: rewrite only what is still unconfirmed, then swap it in.
    std::string fresh;
    for (const auto& t : tasks) fresh += frame('T', task_body(t.queue, t.msg));
    std::string tmp = path + ".tmp";
    int nfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (nfd < 0 || !write_all(nfd, fresh.data(), fresh.size()) || fsync(nfd) != 0 ||
        std::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = os_error("cannot rewrite spool", path);
        if (nfd >= 0) ::close(nfd);
        ::close(fd);
        return e;
    }
    ::close(nfd);
    ::close(fd);  // the lock goes with the old inode; take it on the new file
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return os_error("cannot reopen spool", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        auto e = Error(errc::invalid_argument, "spool '" + path + "' is in use by another client");
        ::close(fd);
        return e;
    }
    std::unique_ptr<Spool> spool(new Spool(std::move(path), fd, sync));
    for (const auto& t : tasks) spool->unconfirmed_.insert(t.msg.id);
    return std::make_pair(std::move(spool), std::move(tasks));
}

Spool::~Spool() {
    if (fd_ >= 0) ::close(fd_);
}

Status Spool::write_record(char kind, std::string_view body, bool do_fsync) {
    auto rec = frame(kind, body);
    if (!write_all(fd_, rec.data(), rec.size())) return os_error("cannot write spool", path_);
    if (do_fsync && fdatasync(fd_) != 0) return os_error("cannot fsync spool", path_);
    return Ok{};
}

Status Spool::append(std::string_view queue, const TaskMessage& msg) {
    std::lock_guard lock(mutex_);
    if (auto st = write_record('T', task_body(queue, msg), sync_ == SpoolSync::always); !st)
        return st;
    unconfirmed_.insert(msg.id);
    return Ok{};
}

void Spool::confirm(const std::string& task_id) {
    std::lock_guard lock(mutex_);
    if (unconfirmed_.erase(task_id) == 0) return;
    if (unconfirmed_.empty()) {
        // Everything is in Redis: start the file over instead of growing it.
        if (ftruncate(fd_, 0) != 0)
            log().warn("spool {}: truncate failed: {}", path_, std::strerror(errno));
        return;
    }
    if (auto st = write_record('A', task_id, false); !st) {
        log().warn("spool {}: {}", path_, st.error().message());  // costs a resend at worst
    }
}

}  // namespace streamfleet::detail
