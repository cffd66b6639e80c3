// Cluster hash slots (lib/redis/slot.hpp): CRC16 and the hash-tag rule, with
// the numbers `redis-cli CLUSTER KEYSLOT` gives on a cluster-enabled
// redis-server 7.0 (checked there, and in Redis Cluster's spec).

#include "redis/slot.hpp"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <string_view>

#include "core/keys.hpp"

using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;

TEST_CASE("crc16 is CRC16-CCITT (XMODEM)") {
    CHECK(crc16("123456789") == 0x31C3);  // the spec's check vector
    CHECK(crc16("") == 0);
    CHECK(crc16("foo") == 0xAF96);
}

TEST_CASE("key_slot hashes the hash tag when there is one, else the whole key") {
    struct Row {
        std::string_view key;
        std::string_view hashed;  // what hash_tag() picks
        std::uint16_t slot;       // CLUSTER KEYSLOT
    };
    const Row rows[] = {
        {"foo", "foo", 12182},
        {"bar", "bar", 5061},
        {"123456789", "123456789", 12739},
        {"{user1000}.following", "user1000", 3443},
        {"{user1000}.followers", "user1000", 3443},
        {"foo{bar}{zap}", "bar", 5061},      // only the first tag counts
        {"foo{}{bar}", "foo{}{bar}", 8363},  // an empty tag: the whole key
        {"foo{{bar}}zap", "{bar", 4015},     // up to the first '}' after the first '{'
        {"foo{bar", "foo{bar", 15278},       // no closing brace: the whole key
        {"streamfleet:{emails}", "emails", 3728},
        {"", "", 0},
    };
    for (const auto& row : rows) {
        CAPTURE(row.key);
        CHECK(hash_tag(row.key) == row.hashed);
        CHECK(key_slot(row.key) == row.slot);
        CHECK(key_slot(row.key) < kSlots);
    }
    CHECK(key_slot("{bar") == key_slot("foo{{bar}}zap"));
}

TEST_CASE("every key of one queue shares one slot; two queues land on different ones") {
    QueueKeys emails(kDefaultPrefix, "emails");
    QueueKeys other(kDefaultPrefix, "default");
    auto slots_of = [](const QueueKeys& k) {
        return std::set<std::uint16_t>{
            key_slot(k.stream()),      key_slot(k.delayed()),     key_slot(k.dead()),
            key_slot(k.clients()),     key_slot(k.servers()),     key_slot(k.nudge()),
            key_slot(k.cancels()),     key_slot(k.task_prefix()), key_slot(k.task("0190-a")),
            key_slot(k.unique("u:1")),
        };
    };
    CHECK(slots_of(emails) == std::set<std::uint16_t>{3728});
    CHECK(slots_of(other) == std::set<std::uint16_t>{5718});
    // The prefix is outside the tag: it does not move the queue.
    CHECK(key_slot(QueueKeys("other:", "emails").stream()) == 3728);
}
