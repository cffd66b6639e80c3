#pragma once

/// @file
/// Symbol visibility for the shared library. The library is built with hidden
/// visibility, so only what is marked STREAMFLEET_API forms the ABI; internals in
/// lib/ stay private and free to change.

#if defined(STREAMFLEET_STATIC) || !defined(__GNUC__)
#define STREAMFLEET_API
#else
#define STREAMFLEET_API __attribute__((visibility("default")))
#endif
