#pragma once

/// @file
/// Umbrella header: includes the whole public API.

#include "streamfleet/client.hpp"
#include "streamfleet/codec.hpp"
#include "streamfleet/errors.hpp"
#include "streamfleet/inspector.hpp"
#include "streamfleet/options.hpp"
#include "streamfleet/server.hpp"
#include "streamfleet/task.hpp"
#include "streamfleet/version.hpp"
