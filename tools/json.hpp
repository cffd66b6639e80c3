// JSON output: string literals that survive binary payloads, and compact object/array writers.
#pragma once

#include <string>
#include <string_view>

namespace cli {

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(std::string_view s);

// A JSON string literal. Text that is UTF-8 passes through; otherwise (binary
// payloads) every byte that is not printable ASCII is escaped as \u00XX, so
// the JSON stays valid (such bytes read back as Latin-1).
std::string json_str(std::string_view s);

// One JSON object, keys in the order added and no whitespace: scripts read
// these one per line.
class JsonObject {
public:
    JsonObject& str(std::string_view key, std::string_view value);
    JsonObject& num(std::string_view key, long long value);
    // `json` is an already encoded value (a nested object or array).
    JsonObject& raw(std::string_view key, std::string_view json);
    std::string text() const { return "{" + body_ + "}"; }

private:
    std::string body_;
};

class JsonArray {
public:
    JsonArray& str(std::string_view value);
    std::string text() const { return "[" + body_ + "]"; }

private:
    std::string body_;
};

}  // namespace cli
