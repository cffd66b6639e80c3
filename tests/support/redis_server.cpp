#include "support/redis_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace streamfleet::test {

namespace {

std::string make_temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sf-redis-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp failed: " + std::string(strerror(errno)));
    return tmpl;
}

// Sends PING on a fresh socket; true once the server answers anything but
// -LOADING (NOAUTH counts: the server is up, it just wants a password).
bool answers_ping(std::uint16_t port) {
    int fd = connect_loopback(port);
    if (fd < 0) return false;
    bool ok = false;
    if (write(fd, "PING\r\n", 6) == 6) {
        char buf[64] = {};
        ssize_t n = read(fd, buf, sizeof buf - 1);
        ok = n > 0 && std::strncmp(buf, "-LOADING", 8) != 0;
    }
    close(fd);
    return ok;
}

// Sends `commands` (inline form, CRLF-terminated) on a fresh socket, after
// AUTH when `password` is set, and returns what arrives until `until` shows
// up in it or a read times out.
std::string raw_commands(std::uint16_t port, const std::string& password,
                         const std::string& commands, std::string_view until) {
    int fd = connect_loopback(port);
    if (fd < 0) return {};
    std::string out;
    std::string send = (password.empty() ? "" : "AUTH " + password + "\r\n") + commands;
    if (write(fd, send.data(), send.size()) == static_cast<ssize_t>(send.size())) {
        char buf[4096];
        ssize_t n;
        while (out.find(until) == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
            out.append(buf, static_cast<std::size_t>(n));
        }
    }
    close(fd);
    return out;
}

}  // namespace

int connect_loopback(std::uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool RedisServerOptions::cluster_by_default() {
    const char* mode = std::getenv("SF_TEST_REDIS");
    return mode && std::string_view(mode) == "cluster";
}

std::uint16_t free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error("cannot bind a loopback port: " + std::string(strerror(errno)));
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

RedisServer::RedisServer(RedisServerOptions options)
    : options_(std::move(options)), dir_(make_temp_dir()) {
    if (options_.sentinel) options_.cluster = false;
    // Another process may grab the free port between our probe and Redis's
    // bind; try a few ports before giving up.
    for (int attempt = 0;; ++attempt) {
        port_ = free_port();
        if (options_.cluster) bus_port_ = free_port();
        write_config();
        try {
            spawn();
            wait_ready();
            if (options_.cluster) {
                raw_commands(port_, options_.password, "CLUSTER ADDSLOTSRANGE 0 16383\r\n", "\r\n");
                wait_cluster_ok();
            }
            return;
        } catch (const std::exception&) {
            reap(SIGKILL);
            if (attempt == 4) {
                std::filesystem::remove_all(dir_);
                throw;
            }
        }
    }
}

RedisServer::~RedisServer() {
    reap(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void RedisServer::write_config() const {
    std::ofstream conf(dir_ + "/redis.conf");
    conf << "port " << port_ << "\n"
         << "bind 127.0.0.1\n"
         << "dir " << dir_ << "\n"
         << "daemonize no\n"
         << "logfile " << dir_
         << "/redis.log\n"
         // A save point makes SIGTERM write a snapshot (stop() keeps data);
         // it never fires by itself within a test.
         << "save 3600 1\n"
         << "enable-debug-command local\n";
    if (options_.aof) conf << "appendonly yes\nappendfsync always\n";
    if (!options_.password.empty()) conf << "requirepass " << options_.password << "\n";
    if (!options_.acl_user.empty()) {
        conf << "user " << options_.acl_user << " on >" << options_.acl_password
             << " ~* &* +@all\n";
    }
    if (options_.unix_socket) conf << "unixsocket " << dir_ << "/redis.sock\nunixsocketperm 700\n";
    if (options_.cluster) {
        // The bus would listen on port + 10000 by default, which may not be
        // free (or may not exist above 55535): give it a free port of its own.
        conf << "cluster-enabled yes\n"
             << "cluster-config-file " << dir_ << "/nodes.conf\n"
             << "cluster-port " << bus_port_ << "\n";
    }
    for (const auto& line : options_.extra_config) conf << line << "\n";
}

void RedisServer::wait_cluster_ok() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        if (raw_commands(port_, options_.password, "CLUSTER INFO\r\n", "cluster_state:")
                .find("cluster_state:ok") != std::string::npos) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the one-node cluster did not reach cluster_state:ok in 20 s; log:\n" +
                             log_tail());
}

void RedisServer::spawn() {
    std::string conf = dir_ + "/redis.conf";
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed: " + std::string(strerror(errno)));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);  // the parent died before prctl
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        // Config errors go to stderr before the log file opens: keep them.
        int err =
            open((std::string(dir_) + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (err >= 0) dup2(err, STDERR_FILENO);
        if (options_.sentinel) {
            execlp("redis-server", "redis-server", conf.c_str(), "--sentinel",
                   static_cast<char*>(nullptr));
        }
        execlp("redis-server", "redis-server", conf.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    pid_ = pid;
}

void RedisServer::wait_ready() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            throw std::runtime_error("redis-server exited at start-up (status " +
                                     std::to_string(status) + "); log:\n" + log_tail());
        }
        if (answers_ping(port_)) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("redis-server did not answer PING within 20 s; log:\n" + log_tail());
}

void RedisServer::reap(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig != SIGKILL) ::kill(pid_, SIGCONT);  // a paused process cannot act on SIGTERM
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
}

std::string RedisServer::url() const {
    if (options_.password.empty()) return url_without_auth();
    return "redis://:" + options_.password + "@127.0.0.1:" + std::to_string(port_);
}

std::string RedisServer::url_without_auth() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
}

std::string RedisServer::unix_url() const { return "unix://" + dir_ + "/redis.sock"; }

void RedisServer::stop() { reap(SIGTERM); }

void RedisServer::kill() { reap(SIGKILL); }

void RedisServer::pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
}

void RedisServer::restart() {
    reap(SIGTERM);
    spawn();
    wait_ready();
    // nodes.conf kept the slots; the node needs a moment to call itself ok.
    if (options_.cluster) wait_cluster_ok();
}

std::string RedisServer::log_tail() const {
    std::stringstream ss;
    for (const char* name : {"/stderr.log", "/redis.log"}) {
        std::ifstream in(dir_ + name);
        if (in) ss << in.rdbuf();
    }
    auto s = ss.str();
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

}  // namespace streamfleet::test
