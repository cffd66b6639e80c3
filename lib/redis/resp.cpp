#include "redis/resp.hpp"

#include <hiredis/read.h>

#include <algorithm>
#include <charconv>
#include <new>

namespace streamfleet::detail::redis {

CommandWriter::CommandWriter(std::string& out, std::size_t nargs, std::size_t size_hint)
    : out_(out) {
    // One reservation up front: growing a fresh command string argument by
    // argument reallocates and copies it several times.
    out_.reserve(out_.size() + size_hint + 16 * (nargs + 1));
    put_len('*', nargs);
}

void CommandWriter::put_len(char prefix, std::size_t n) {
    char num[24];
    num[0] = prefix;
    auto [p, ec] = std::to_chars(num + 1, num + sizeof num - 2, n);
    (void)ec;  // 20 digits always fit
    *p++ = '\r';
    *p++ = '\n';
    out_.append(num, p);
}

void CommandWriter::arg(std::string_view a) {
    put_len('$', a.size());
    out_.append(a.data(), a.size());
    out_.append("\r\n", 2);
}

void CommandWriter::arg(std::int64_t n) {
    char num[24];
    auto [p, ec] = std::to_chars(num, num + sizeof num, n);
    (void)ec;
    arg(std::string_view(num, static_cast<std::size_t>(p - num)));
}

void append_command(std::string& out, std::span<const std::string_view> argv) {
    std::size_t bytes = 0;
    for (auto a : argv) bytes += a.size();
    CommandWriter w(out, argv.size(), bytes);
    for (auto a : argv) w.arg(a);
}

namespace {

// hiredis calls these while parsing. A child is constructed in place inside its
// parent's element vector, so only the root is heap allocated and freeObject is
// only ever asked to free roots (read.c frees r->reply, the root, on error; we
// own roots returned by GetReply). Children arrive in index order, so the
// vector grows as they come: a hostile header such as `*2000000000` must not
// make us allocate for elements that never arrive. Nothing may throw through
// hiredis's C frames; returning nullptr makes it fail the parse with "Out of
// memory", which the connection treats as a protocol error.
Reply* slot_for(const redisReadTask* task) {
    if (task->parent == nullptr) return new (std::nothrow) Reply();
    auto& siblings = static_cast<Reply*>(task->parent->obj)->mutable_elements();
    auto idx = static_cast<std::size_t>(task->idx);
    // Growing may move earlier siblings; they are complete, and hiredis keeps
    // pointers only to the parents on its stack, which live one level up.
    if (siblings.size() <= idx) siblings.resize(idx + 1);
    return &siblings[idx];
}

template <class Fill>
void* create(const redisReadTask* task, Fill&& fill) noexcept {
    try {
        Reply* r = slot_for(task);
        if (r) fill(*r);
        return r;
    } catch (...) {
        return nullptr;
    }
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
    return create(task, [&](Reply& r) {
        std::string s(str, len);
        switch (task->type) {
            case REDIS_REPLY_ERROR:
                r = Reply::error(std::move(s));
                break;
            case REDIS_REPLY_STATUS:
                r = Reply::status(std::move(s));
                break;
            default:
                r = Reply::string(std::move(s));
                break;
        }
    });
}

void* create_array(const redisReadTask* task, int elements) {
    return create(task, [&](Reply& r) {
        std::vector<Reply> v;
        // Trust the header for the common case only; beyond that, grow.
        v.reserve(static_cast<std::size_t>(std::clamp(elements, 0, 1024)));
        r = Reply::array(std::move(v));
    });
}

void* create_integer(const redisReadTask* task, long long value) {
    return create(task, [&](Reply& r) { r = Reply::integer(value); });
}

void* create_nil(const redisReadTask* task) {
    return create(task, [&](Reply& r) { r = Reply::nil(); });
}

void free_object(void* obj) { delete static_cast<Reply*>(obj); }

redisReplyObjectFunctions g_functions = {
    create_string, create_array, create_integer, create_nil, free_object,
};

}  // namespace

ReplyParser::ReplyParser() : reader_(redisReaderCreateWithFunctions(&g_functions)) {
    if (!reader_) throw std::bad_alloc();
}

ReplyParser::~ReplyParser() { redisReaderFree(reader_); }

Status ReplyParser::feed(const char* data, std::size_t len) {
    if (redisReaderFeed(reader_, data, len) != REDIS_OK) {
        return Error(errc::protocol, std::string("reply parser: ") + reader_->errstr);
    }
    return Ok{};
}

Result<std::unique_ptr<Reply>> ReplyParser::next() {
    void* obj = nullptr;
    if (redisReaderGetReply(reader_, &obj) != REDIS_OK) {
        return Error(errc::protocol, std::string("invalid RESP from server: ") + reader_->errstr);
    }
    return std::unique_ptr<Reply>(static_cast<Reply*>(obj));
}

void ReplyParser::reset() {
    redisReaderFree(reader_);
    reader_ = redisReaderCreateWithFunctions(&g_functions);
    if (!reader_) throw std::bad_alloc();
}

}  // namespace streamfleet::detail::redis
