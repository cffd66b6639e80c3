// Ids, keys and the wire codec: pure functions, no Redis.

#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <thread>

#include "core/clock.hpp"
#include "core/done_format.hpp"
#include "core/keys.hpp"
#include "core/uuid.hpp"
#include "core/wire.hpp"
#include "redis/slot.hpp"

using namespace streamfleet::detail;

TEST_CASE("UUIDv7 ids: well-formed, carry their time, strictly increasing") {
    ManualClock clock(1'700'000'000'123);
    UuidV7Generator gen(clock);
    std::string prev;
    for (int i = 0; i < 10'000; ++i) {  // far more than 4096 ids in one millisecond
        auto id = gen.next();
        REQUIRE(is_uuid_v7(id));
        REQUIRE(id > prev);
        prev = id;
    }
    CHECK(uuid_v7_ms(gen.next()) >= 1'700'000'000'123);
    clock.advance(1000);
    auto later = gen.next();
    CHECK(uuid_v7_ms(later) == 1'700'000'001'123);
    clock.set(1'600'000'000'000);  // the clock steps back: ids stay ordered
    CHECK(gen.next() > later);

    CHECK_FALSE(is_uuid_v7("0190e3a2-6c4b-4abc-8def-0123456789ab"));  // version 4
    CHECK_FALSE(is_uuid_v7("0190e3a2-6c4b-7abc-cdef-0123456789ab"));  // wrong variant
    CHECK_FALSE(is_uuid_v7("not-a-uuid"));
    CHECK(uuid_v7_ms("nope") == 0);
}

TEST_CASE("UUIDv7 ids are unique across threads") {
    UuidV7Generator gen;
    std::vector<std::vector<std::string>> per(4);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < 5000; ++i) per[t].push_back(gen.next());
        });
    }
    for (auto& t : ts) t.join();
    std::set<std::string> all;
    for (auto& v : per) all.insert(v.begin(), v.end());
    CHECK(all.size() == 20'000);
}

TEST_CASE("key layout keeps every queue key in the queue's hash tag") {
    QueueKeys k("streamfleet:", "emails");
    CHECK(k.stream() == "streamfleet:{emails}");
    CHECK(k.delayed() == "streamfleet:{emails}:delayed");
    CHECK(k.dead() == "streamfleet:{emails}:dead");
    CHECK(k.clients() == "streamfleet:{emails}:clients");
    CHECK(k.servers() == "streamfleet:{emails}:servers");
    CHECK(receiver_key("streamfleet:", "abc") == "streamfleet:receiver:{abc}");
}

TEST_CASE("Go-compatible keys: the Go library's shared names, ours in the stream's slot") {
    QueueKeys k("streamfleet:", "emails", KeyStyle::go);
    // What a Go client or worker names: no braces.
    CHECK(k.stream() == "streamfleet:emails");
    CHECK(k.clients() == "streamfleet:emails:receivers");
    CHECK(receiver_key("streamfleet:", "abc", KeyStyle::go) == "streamfleet:receiver:abc");
    // Ours alone: tagged with the whole stream key, which hashes like the stream.
    CHECK(k.delayed() == "{streamfleet:emails}:delayed");
    CHECK(k.dead() == "{streamfleet:emails}:dead");
    CHECK(k.servers() == "{streamfleet:emails}:servers");
    CHECK(k.nudge() == "{streamfleet:emails}:nudge");
    CHECK(k.cancels() == "{streamfleet:emails}:cancels");
    CHECK(k.task("t1") == "{streamfleet:emails}:task:t1");
    CHECK(k.unique("u") == "{streamfleet:emails}:unique:u");

    // A queue named with a hash tag, as Go users do on a Cluster, keeps it.
    QueueKeys tagged("streamfleet:", "{orders}", KeyStyle::go);
    CHECK(tagged.stream() == "streamfleet:{orders}");
    CHECK(tagged.delayed() == "streamfleet:{orders}:delayed");

    for (const auto* q : {&k, &tagged}) {
        auto slot = redis::key_slot(q->stream());
        CHECK(redis::key_slot(q->delayed()) == slot);
        CHECK(redis::key_slot(q->dead()) == slot);
        CHECK(redis::key_slot(q->servers()) == slot);
        CHECK(redis::key_slot(q->nudge()) == slot);
        CHECK(redis::key_slot(q->cancels()) == slot);
        CHECK(redis::key_slot(q->task("0190e3a2-6c4b-7abc-8def-0123456789ab")) == slot);
        CHECK(redis::key_slot(q->task_prefix()) == slot);
        CHECK(redis::key_slot(q->unique("key")) == slot);
    }

    // Braces only as one hash tag, and only in the Go style.
    CHECK(validate_queue_name("{orders}", KeyStyle::go).ok());
    CHECK(validate_queue_name("jobs{eu}", KeyStyle::go).ok());
    CHECK_FALSE(validate_queue_name("{orders}").ok());
    for (const char* bad : {"{}", "a{b", "a}b", "}a{", "{a}{b}", "{{a}"}) {
        CAPTURE(bad);
        auto st = validate_queue_name(bad, KeyStyle::go);
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().message().find("hash tag") != std::string::npos);
    }
}

TEST_CASE("queue names and prefixes are validated with a reason") {
    CHECK(validate_queue_name("emails").ok());
    CHECK(validate_queue_name("a:b-c_d.e/f").ok());
    struct Case {
        std::string name;
        const char* mentions;
    };
    const Case cases[] = {
        {"", "empty"},
        {std::string(201, 'q'), "limit is 200"},
        {"a{b", "brace"},
        {"a b", "space or control"},
        {std::string("a\0b", 3), "space or control"},
    };
    for (const auto& c : cases) {
        auto st = validate_queue_name(c.name);
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().is(errc::invalid_argument));
        CHECK(st.error().message().find(c.mentions) != std::string::npos);
    }
    CHECK(validate_prefix("myapp:").ok());
    CHECK_FALSE(validate_prefix("my{app}").ok());
}

namespace {
std::vector<RawField> pairs(const FieldList& f) {
    std::vector<RawField> out;
    auto v = f.views();
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) out.emplace_back(v[i], v[i + 1]);
    return out;
}
}  // namespace

TEST_CASE("task messages round-trip, v1 fields and extensions") {
    TaskMessage m;
    m.id = "0190e3a2-6c4b-7abc-8def-0123456789ab";
    m.client_id = "0190e3a2-0000-7000-8000-000000000001";
    m.data = std::string("bin\0ary", 7);
    m.max_retries = 5;
    m.expires_ts = 1'700'000'000'000;
    m.retry_delay_ms = 250;
    m.send_notif = true;
    m.retries = 2;
    auto plain = decode_task(pairs(encode(m)));
    REQUIRE(plain.ok());
    CHECK(*plain == m);
    CHECK(pairs(encode(m)).size() == 9);  // exactly the v1 fields

    m.name = "send_email";
    m.backoff = BackoffKind::exponential;
    m.backoff_max_ms = 60'000;
    m.timeout_ms = 3000;
    m.enqueued_ts = 1'699'999'999'000;
    m.unique = "user:42";
    m.error = "smtp down";
    auto full = decode_task(pairs(encode(m)));
    REQUIRE(full.ok());
    CHECK(*full == m);
}

TEST_CASE("unknown fields are ignored") {
    TaskMessage m;
    m.id = "x";
    auto encoded = encode(m);  // owns the number text the views point into
    auto fields = pairs(encoded);
    fields.emplace_back("x_future_feature", "whatever");
    auto r = decode_task(fields);
    REQUIRE(r.ok());
    CHECK(r->id == "x");
}

TEST_CASE("every malformed task variant is rejected naming the field") {
    TaskMessage m;
    m.id = "x";
    m.client_id = "c";
    const auto encoded = encode(m);  // owns the number text the views point into
    const auto good = pairs(encoded);
    auto with = [&](std::string_view field, std::string_view value) {
        auto f = good;
        for (auto& [k, v] : f) {
            if (k == field) v = value;
        }
        return f;
    };
    auto without = [&](std::string_view field) {
        auto f = good;
        std::erase_if(f, [&](const RawField& p) { return p.first == field; });
        return f;
    };
    struct Case {
        std::vector<RawField> fields;
        const char* mentions;
    };
    std::vector<Case> cases = {
        {without("enc_version"), "missing field 'enc_version'"},
        {with("enc_version", "2"), "unsupported enc_version '2'"},
        {without("id"), "missing field 'id'"},
        {with("id", ""), "field 'id' is empty"},
        {without("client_id"), "missing field 'client_id'"},
        {without("data"), "missing field 'data'"},
        {with("max_retries", "abc"), "'max_retries' is not a non-negative integer: 'abc'"},
        {with("max_retries", "-1"), "'max_retries'"},
        {with("max_retries", "99999999999"), "'max_retries'"},
        {without("expires_ts"), "missing field 'expires_ts'"},
        {with("expires_ts", "12x"), "'expires_ts'"},
        {with("retry_delay", ""), "'retry_delay'"},
        {with("send_notif", "yes"), "'send_notif' must be '0' or '1'"},
        {without("retries"), "missing field 'retries'"},
        {with("retries", "1.5"), "'retries'"},
    };
    auto dup = good;
    dup.emplace_back("id", "y");
    cases.push_back({dup, "field 'id' appears twice"});
    auto bad_backoff = good;
    bad_backoff.emplace_back("x_backoff", "random");
    cases.push_back({bad_backoff, "'x_backoff' must be fixed, linear or exponential"});
    auto bad_timeout = good;
    bad_timeout.emplace_back("x_timeout", "soon");
    cases.push_back({bad_timeout, "'x_timeout'"});
    auto notif_without_client = with("send_notif", "1");
    for (auto& [k, v] : notif_without_client) {
        if (k == "client_id") v = "";
    }
    cases.push_back({notif_without_client, "client_id' is empty but send_notif"});
    cases.push_back({{}, "missing field 'enc_version'"});

    for (const auto& c : cases) {
        CAPTURE(c.mentions);
        auto r = decode_task(c.fields);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().is(errc::protocol));
        CHECK(r.error().message().find(c.mentions) != std::string::npos);
    }
}

TEST_CASE("notifications round-trip and reject malformed ones") {
    Notification n{"id1", NotificationType::error, "boom", "", "server-a"};
    auto r = decode_notification(pairs(encode(n)));
    REQUIRE(r.ok());
    CHECK(*r == n);
    Notification ok{"id2", NotificationType::completed, "", "result bytes", ""};
    CHECK(*decode_notification(pairs(encode(ok))) == ok);

    std::vector<RawField> bad_type = {{"enc_version", "1"}, {"task_id", "t"}, {"type", "done"}};
    auto e = decode_notification(bad_type);
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message().find("field 'type'") != std::string::npos);
    std::vector<RawField> no_id = {{"enc_version", "1"}, {"type", "completed"}};
    CHECK_FALSE(decode_notification(no_id).ok());
}

// A Go streamfleet client's decoder requires err_msg in every notification (issue 11): an entry
// without it crashes the Go client, so it is written for every type, empty unless an error.
TEST_CASE("every notification carries err_msg, empty unless it reports an error") {
    for (auto type : {NotificationType::completed, NotificationType::canceled,
                      NotificationType::expired, NotificationType::error}) {
        CAPTURE(to_string(type));
        Notification n{"id1", type, "", "", ""};
        auto fields = pairs(encode(n));
        int seen = 0;
        for (const auto& [f, v] : fields) {
            if (f != "err_msg") continue;
            ++seen;
            CHECK(v.empty());
        }
        CHECK(seen == 1);
        // The Go decoder reads these first three by name; they lead the entry.
        REQUIRE(fields.size() >= 4);
        CHECK(fields[0].first == "enc_version");
        CHECK(fields[1].first == "task_id");
        CHECK(fields[2].first == "type");
    }
    Notification failed{"id2", NotificationType::error, "boom", "", ""};
    auto fields = pairs(encode(failed));
    CHECK(std::count(fields.begin(), fields.end(), RawField{"err_msg", "boom"}) == 1);
}

TEST_CASE("a moved FieldList keeps its number fields readable") {
    auto make = [] {
        FieldList f;
        f.add("a", std::int64_t{1234567890123});
        f.add("b", "text");
        f.add("c", std::int64_t{-5});
        return f;
    };
    FieldList moved(make());
    FieldList again(std::move(moved));
    auto v = again.views();
    REQUIRE(v.size() == 6);
    CHECK(v[1] == "1234567890123");
    CHECK(v[3] == "text");
    CHECK(v[5] == "-5");
}

TEST_CASE("x_history keeps the last failed runs, oldest first, and survives garbage") {
    std::string h;
    for (int i = 0; i < 20; ++i) h = history_add(h, 1000 + i, "err " + std::to_string(i), 16);
    auto e = history_entries(h);
    REQUIRE(e.size() == 16);
    CHECK(e.front() == "1004 err 4");
    CHECK(e.back() == "1019 err 19");
    CHECK(history_entries("not msgpack \xc1").empty());
    CHECK(history_add("\xc1garbage", 5, "x").size() > 0);
    CHECK(history_entries(history_add("\xc1garbage", 5, "x")) == std::vector<std::string>{"5 x"});
}

TEST_CASE("a bucket family's member names it back, and anything else is refused") {
    done::Family f{"a1b2c3d4", 42, 8, 86'400'000};
    auto back = done::parse_member(done::member(f));
    REQUIRE(back.has_value());
    CHECK(back->tag == "a1b2c3d4");
    CHECK(back->seq == 42);
    CHECK(back->shards == 8);
    CHECK(back->retention_ms == 86'400'000);
    for (const char* bad : {"", "junk", "t.1.2", ".1.2.3", "t.1.0.5", "t.1.x.5", "t.1.2.",
                            "t.1.4294967296.5", "t.-1.2.3"})
        CHECK_MESSAGE(!done::parse_member(bad).has_value(), bad);
}
