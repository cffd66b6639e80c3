#pragma once

// Connection URLs, parsed without any I/O:
//   redis://[user[:password]@]host[:port][/db]
//   rediss://...                         (TLS; parsed now, transport in a later issue)
//   unix://[user[:password]@]/path[?db=N]
//   redis-sentinel://[user[:password]@]h:p,h:p/master[/db]
//       [?db=N&sentinel_user=U&sentinel_password=P]
//       (user:password are the data nodes' credentials; the sentinels get
//       sentinel_user/sentinel_password, none when absent; port 26379 by default)
//   redis-cluster://[user[:password]@]h:p,h:p
// User and password are percent-decoded. IPv6 hosts go in brackets: [::1]:6379.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace streamfleet::detail::redis {

enum class Scheme { redis, rediss, unix_socket, sentinel, cluster };

/// One server address: TCP host/port or a unix socket path.
struct Endpoint {
    std::string host;  // empty for unix sockets
    std::uint16_t port = 6379;
    std::string path;  // unix socket path, empty for TCP

    bool is_unix() const noexcept { return !path.empty(); }
    /// "host:port", "[v6]:port" or "unix:/path", for messages.
    std::string to_string() const;
    bool operator==(const Endpoint&) const = default;
};

struct Address {
    Scheme scheme = Scheme::redis;
    std::vector<Endpoint> endpoints;  // one for redis/rediss/unix; seeds for sentinel/cluster
    std::string username;             // empty: the default user
    std::string password;             // empty: no AUTH
    int db = 0;
    std::string master_name;  // sentinel only
    std::string sentinel_username;  // sentinel only: AUTH to the sentinels themselves
    std::string sentinel_password;

    bool tls() const noexcept { return scheme == Scheme::rediss; }
    /// The URL with the password replaced by "***", safe for logs and errors.
    std::string redacted() const;
};

/// Parses `url`; the error (errc::invalid_argument) quotes the URL with any
/// password masked and names the part that is wrong.
Result<Address> parse_url(std::string_view url);

}  // namespace streamfleet::detail::redis
