#pragma once

/// @file
/// msgpack helpers for typed payloads: any type msgpack-cxx can pack
/// (MSGPACK_DEFINE, std containers, ...) travels as a task's data.

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST
#endif
#include <msgpack.hpp>
#include <string>
#include <string_view>

#include "streamfleet/errors.hpp"

namespace streamfleet {
inline namespace v1 {

/// @brief Packs `value` with msgpack.
template <class T>
std::string encode_msgpack(const T& value) {
    msgpack::sbuffer buf;
    msgpack::pack(buf, value);
    return std::string(buf.data(), buf.size());
}

/// @brief Unpacks a `T` from `bytes`.
/// @throws InvalidArgument when the bytes are not msgpack or not a `T`, naming
///         what failed; never undefined behaviour.
template <class T>
T decode_msgpack(std::string_view bytes) {
    try {
        auto handle = msgpack::unpack(bytes.data(), bytes.size());
        return handle.get().as<T>();
    } catch (const std::exception& e) {
        throw InvalidArgument(std::string("payload is not a msgpack value of the expected type: ") +
                              e.what());
    }
}

}  // namespace v1
}  // namespace streamfleet
