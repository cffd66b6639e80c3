#include "redis/resp.hpp"

#include <hiredis/read.h>

#include <charconv>
#include <new>

namespace streamfleet::detail::redis {

void append_command(std::string& out, std::span<const std::string_view> argv) {
    char num[24];
    auto put_len = [&](char prefix, std::size_t n) {
        out.push_back(prefix);
        auto [p, ec] = std::to_chars(num, num + sizeof num, n);
        (void)ec;
        out.append(num, p);
        out.append("\r\n", 2);
    };
    put_len('*', argv.size());
    for (auto arg : argv) {
        put_len('$', arg.size());
        out.append(arg.data(), arg.size());
        out.append("\r\n", 2);
    }
}

namespace {

// hiredis calls these while parsing. A child is constructed in place inside its
// parent's element vector (sized by createArray), so only the root is heap
// allocated and freeObject is only ever asked to free roots (read.c frees
// r->reply, the root, on error; we own roots returned by GetReply).
Reply* slot_for(const redisReadTask* task) {
    if (task->parent == nullptr) return new (std::nothrow) Reply();
    auto* parent = static_cast<Reply*>(task->parent->obj);
    return &parent->mutable_elements()[static_cast<std::size_t>(task->idx)];
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
    Reply* r = slot_for(task);
    if (!r) return nullptr;
    std::string s(str, len);
    switch (task->type) {
        case REDIS_REPLY_ERROR: *r = Reply::error(std::move(s)); break;
        case REDIS_REPLY_STATUS: *r = Reply::status(std::move(s)); break;
        default: *r = Reply::string(std::move(s)); break;
    }
    return r;
}

void* create_array(const redisReadTask* task, int elements) {
    Reply* r = slot_for(task);
    if (!r) return nullptr;
    std::vector<Reply> v(static_cast<std::size_t>(elements < 0 ? 0 : elements));
    *r = Reply::array(std::move(v));
    return r;
}

void* create_integer(const redisReadTask* task, long long value) {
    Reply* r = slot_for(task);
    if (!r) return nullptr;
    *r = Reply::integer(value);
    return r;
}

void* create_nil(const redisReadTask* task) {
    Reply* r = slot_for(task);
    if (!r) return nullptr;
    *r = Reply::nil();
    return r;
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
