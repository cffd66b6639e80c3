#pragma once

/// @file
/// Umbrella header: includes the whole public API.

#include "streamfleet/errors.hpp"
#include "streamfleet/version.hpp"
