// ClientContext: what every client component shares: options, ids, loop, topology, clock, queues.
#pragma once

// Components receive the context at construction and keep a reference; the
// context outlives every component (Client::Impl owns both and stops the loop
// before either goes). Nothing in it changes after the client is built, so any
// thread may read it; the Runtime and Topology keep their own thread rules
// (the topology is used on the loop thread only).

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/clock.hpp"
#include "core/keys.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/errors.hpp"
#include "streamfleet/options.hpp"

namespace streamfleet::detail::client {

/// Queue name → its keys. Ordered, so the UnknownQueue text lists names stably.
using QueueMap = std::map<std::string, QueueKeys, std::less<>>;

struct ClientContext {
    ClientOptions options;
    std::string id;
    /// PREFIXreceiver:{id}: this client's notification stream.
    std::string receiver;
    /// The only source of wall time for the client's components.
    const Clock& clock;
    Runtime& rt;
    redis::Topology& topo;
    /// The queues declared when the client was created.
    QueueMap queues;

    /// The keys of a declared queue; throws UnknownQueue listing the declared ones.
    const QueueKeys& keys_for(std::string_view queue) const {
        auto it = queues.find(queue);
        if (it != queues.end()) return it->second;
        std::string declared;
        for (const auto& [name, _] : queues) declared += (declared.empty() ? "" : ", ") + name;
        throw UnknownQueue(
            "queue '" + std::string(queue) +
            "' was not declared when this client was created (declared: " + declared + ")");
    }
};

}  // namespace streamfleet::detail::client
