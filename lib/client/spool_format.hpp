#pragma once

// Spool format: the records of a spool file, framed and parsed without I/O, so that damaged
// files can be tested alone.
//
// A record is self-delimiting and checked:
//   magic "SFr1" | u32 LE body length | u8 kind | u32 LE CRC-32C of (length, kind, body) | body
// The parser never trusts a record it cannot check. At a record whose magic, length or checksum
// is wrong (a torn write, a flipped bit) it searches forward for the next magic that starts a
// record with a good checksum and goes on from there, so one damaged record costs that record
// only, never the ones after it. Bytes after the last good record are a torn tail.
//
// Files written before records had a magic (u32 length | kind | body, no check) are read as
// such when no checked record is found at all, so an upgrade keeps what an older client left.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace streamfleet::detail::spool {

inline constexpr char kTask = 'T';       // body: msgpack [queue, field, value, ...]
inline constexpr char kConfirmed = 'A';  // body: the task id Redis confirmed

/// Bytes a record adds to its body.
inline constexpr std::size_t kHeaderSize = 13;

/// CRC-32C (Castagnoli), continuing from `crc`.
std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept;

/// Appends one framed record to `out`.
void append_record(std::string& out, char kind, std::string_view body);

struct Record {
    char kind = 0;
    std::string_view body;  // points into the parsed data
};

struct Parsed {
    std::vector<Record> records;  // every good record, in file order
    std::size_t damaged = 0;      // stretches of bad bytes skipped between good records
    std::size_t damaged_bytes = 0;
    std::size_t torn_tail = 0;  // bytes after the last good record
    bool legacy = false;        // read in the unchecked format of older versions
};

/// Every good record of `data`; see the header comment for what is skipped.
Parsed parse(std::string_view data);

}  // namespace streamfleet::detail::spool
