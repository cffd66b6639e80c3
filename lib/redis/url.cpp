#include "redis/url.hpp"

#include <charconv>

namespace streamfleet::detail::redis {

namespace {

constexpr std::string_view scheme_name(Scheme s) {
    switch (s) {
        case Scheme::redis:
            return "redis";
        case Scheme::rediss:
            return "rediss";
        case Scheme::unix_socket:
            return "unix";
        case Scheme::sentinel:
            return "redis-sentinel";
        case Scheme::cluster:
            return "redis-cluster";
    }
    return "redis";
}

// Masks the sentinel password of a query string ("...sentinel_password=x&...").
std::string mask_query_secret(std::string url) {
    constexpr std::string_view key = "sentinel_password=";
    auto q = url.find('?');
    if (q == std::string::npos) return url;
    auto at = url.find(key, q);
    if (at == std::string::npos) return url;
    auto from = at + key.size();
    auto end = url.find('&', from);
    url.replace(from, end == std::string::npos ? std::string::npos : end - from, "***");
    return url;
}

// Masks the passwords of a URL that may not parse, so errors never echo secrets.
std::string mask_secret(std::string_view url) {
    auto start = url.find("://");
    if (start == std::string_view::npos) return std::string(url);
    start += 3;
    auto at = url.find('@', start);
    auto colon = url.find(':', start);
    if (at == std::string_view::npos || colon == std::string_view::npos || colon > at) {
        return mask_query_secret(std::string(url));
    }
    return mask_query_secret(std::string(url.substr(0, colon + 1)) + "***" +
                             std::string(url.substr(at)));
}

struct Parser {
    std::string_view url;

    Error fail(std::string_view what) const {
        return Error(errc::invalid_argument,
                     "invalid Redis URL '" + mask_secret(url) + "': " + std::string(what));
    }
};

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

template <class Int>
bool parse_int(std::string_view s, Int& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

Result<Endpoint> parse_host_port(const Parser& p, std::string_view hp) {
    Endpoint ep;
    std::string_view host, port;
    if (hp.starts_with('[')) {
        auto close = hp.find(']');
        if (close == std::string_view::npos) return p.fail("unterminated '[' in IPv6 host");
        host = hp.substr(1, close - 1);
        auto rest = hp.substr(close + 1);
        if (!rest.empty()) {
            if (rest[0] != ':') return p.fail("expected ':' after ']' in host");
            port = rest.substr(1);
            if (port.empty()) return p.fail("empty port after ':'");
        }
    } else {
        auto colon = hp.rfind(':');
        if (colon != std::string_view::npos) {
            host = hp.substr(0, colon);
            port = hp.substr(colon + 1);
            if (port.empty()) return p.fail("empty port after ':'");
        } else {
            host = hp;
        }
    }
    if (host.empty()) return p.fail("missing host");
    ep.host = std::string(host);
    if (!port.empty()) {
        unsigned value = 0;
        if (!parse_int(port, value) || value == 0 || value > 65535) {
            return p.fail("port '" + std::string(port) + "' is not a number in 1..65535");
        }
        ep.port = static_cast<std::uint16_t>(value);
    }
    return ep;
}

Status parse_db(const Parser& p, std::string_view s, int& db) {
    if (!parse_int(s, db) || db < 0) {
        return p.fail("database '" + std::string(s) + "' is not a non-negative integer");
    }
    return Ok{};
}

// Splits "user:password@rest" off; leaves `rest` pointing after '@'.
Status parse_userinfo(const Parser& p, std::string_view& rest, Address& a) {
    auto slash = rest.find('/');
    auto at = rest.rfind('@', slash == std::string_view::npos ? rest.size() : slash);
    if (at == std::string_view::npos) return Ok{};
    auto info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = info.find(':');
    auto user = info.substr(0, colon);
    if (!percent_decode(user, a.username)) return p.fail("bad percent-escape in user name");
    if (colon != std::string_view::npos) {
        if (!percent_decode(info.substr(colon + 1), a.password)) {
            return p.fail("bad percent-escape in password");
        }
    }
    return Ok{};
}

// Calls `on(key, value)` for each key=value of a URL's query, in order, until
// one fails.
template <class On>
Status each_param(std::string_view query, On&& on) {
    while (!query.empty()) {
        auto amp = query.find('&');
        auto kv = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        auto eq = kv.find('=');
        auto value = eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
        if (auto st = on(kv.substr(0, eq), value); !st) return st.error();
    }
    return Ok{};
}

// redis-sentinel:// options: db=N, and the sentinels' own credentials
// (sentinel_user, sentinel_password), which may differ from the data nodes'.
Status parse_sentinel_query(const Parser& p, std::string_view query, Address& a) {
    return each_param(query, [&](std::string_view key, std::string_view value) -> Status {
        if (key == "db") {
            if (auto st = parse_db(p, value, a.db); !st) return st.error();
        } else if (key == "sentinel_user") {
            if (!percent_decode(value, a.sentinel_username))
                return p.fail("bad percent-escape in sentinel_user");
        } else if (key == "sentinel_password") {
            if (!percent_decode(value, a.sentinel_password))
                return p.fail("bad percent-escape in sentinel_password");
        } else {
            return p.fail("unknown parameter '" + std::string(key) +
                          "' (redis-sentinel:// takes db, sentinel_user, sentinel_password)");
        }
        return Ok{};
    });
}

}  // namespace

std::string Endpoint::to_string() const {
    if (is_unix()) return "unix:" + path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::string Address::redacted() const {
    std::string out(scheme_name(scheme));
    out += "://";
    if (!username.empty() || !password.empty()) {
        out += username;
        if (!password.empty()) out += ":***";
        out += "@";
    }
    if (scheme == Scheme::unix_socket) {
        out += endpoints.empty() ? std::string() : endpoints.front().path;
        // Appended piece by piece: g++ 12 at -O3 warns (-Wrestrict, a false
        // positive) on `out += "literal" + std::string`.
        if (db != 0) {
            out += "?db=";
            out += std::to_string(db);
        }
        return out;
    }
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
        if (i) out += ",";
        out += endpoints[i].to_string();
    }
    if (!master_name.empty()) {
        out += '/';
        out += master_name;
    }
    if (db != 0) {
        out += '/';
        out += std::to_string(db);
    }
    if (!sentinel_username.empty() || !sentinel_password.empty()) {
        out += "?sentinel_user=";
        out += sentinel_username;
        if (!sentinel_password.empty()) out += "&sentinel_password=***";
    }
    return out;
}

Result<Address> parse_url(std::string_view url) {
    Parser p{url};
    auto sep = url.find("://");
    if (sep == std::string_view::npos) {
        return p.fail(
            "missing scheme; expected redis://, rediss://, unix://, "
            "redis-sentinel:// or redis-cluster://");
    }
    auto scheme = url.substr(0, sep);
    Address a;
    if (scheme == "redis")
        a.scheme = Scheme::redis;
    else if (scheme == "rediss")
        a.scheme = Scheme::rediss;
    else if (scheme == "unix")
        a.scheme = Scheme::unix_socket;
    else if (scheme == "redis-sentinel")
        a.scheme = Scheme::sentinel;
    else if (scheme == "redis-cluster")
        a.scheme = Scheme::cluster;
    else
        return p.fail("unknown scheme '" + std::string(scheme) + "'");

    auto rest = url.substr(sep + 3);
    if (auto st = parse_userinfo(p, rest, a); !st) return st.error();

    if (a.scheme == Scheme::unix_socket) {
        auto q = rest.find('?');
        auto path = rest.substr(0, q);
        if (path.empty() || path[0] != '/') return p.fail("unix socket path must be absolute");
        a.endpoints.push_back(Endpoint{.host = {}, .port = 0, .path = std::string(path)});
        if (q != std::string_view::npos) {
            auto st = each_param(rest.substr(q + 1),
                                 [&](std::string_view key, std::string_view value) -> Status {
                                     if (key == "db") return parse_db(p, value, a.db);
                                     return p.fail("unknown parameter '" + std::string(key) + "'");
                                 });
            if (!st) return st.error();
        }
        return a;
    }

    if (auto q = rest.find('?'); q != std::string_view::npos) {
        if (a.scheme != Scheme::sentinel) return p.fail("query parameters are not supported");
        if (auto st = parse_sentinel_query(p, rest.substr(q + 1), a); !st) return st.error();
        rest = rest.substr(0, q);
    }
    auto slash = rest.find('/');
    auto hosts = rest.substr(0, slash);
    auto path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (hosts.empty()) return p.fail("missing host");

    bool multi = a.scheme == Scheme::sentinel || a.scheme == Scheme::cluster;
    while (true) {
        auto comma = hosts.find(',');
        if (comma != std::string_view::npos && !multi) {
            return p.fail(
                "several hosts are only allowed for redis-sentinel:// and redis-cluster://");
        }
        auto ep = parse_host_port(p, hosts.substr(0, comma));
        if (!ep) return ep.error();
        if (a.scheme == Scheme::sentinel &&
            hosts.substr(0, comma).find(':') == std::string_view::npos) {
            ep->port = 26379;  // the conventional Sentinel port
        }
        a.endpoints.push_back(std::move(*ep));
        if (comma == std::string_view::npos) break;
        hosts = hosts.substr(comma + 1);
    }

    if (a.scheme == Scheme::sentinel) {
        auto slash2 = path.find('/');
        a.master_name = std::string(path.substr(0, slash2));
        if (a.master_name.empty()) return p.fail("redis-sentinel:// needs a master name: /master");
        if (slash2 != std::string_view::npos) {
            if (auto st = parse_db(p, path.substr(slash2 + 1), a.db); !st) return st.error();
        }
    } else if (a.scheme == Scheme::cluster) {
        if (!path.empty())
            return p.fail("redis-cluster:// takes no database (Cluster has only db 0)");
    } else if (!path.empty()) {
        if (auto st = parse_db(p, path, a.db); !st) return st.error();
    }
    return a;
}

}  // namespace streamfleet::detail::redis
