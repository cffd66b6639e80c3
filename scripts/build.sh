#!/usr/bin/env bash
# Configures (once) and builds one build directory.
# Usage: scripts/build.sh DIR [meson setup options...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
# The project's own builds (CI, the README's commands, developers) treat
# warnings as errors; meson.build does not force it on people who build the
# library themselves with another compiler or flags.
if [[ ! -f "$dir/build.ninja" ]]; then
  meson setup "$dir" -Dwerror=true "$@" >/dev/null
fi
ninja -C "$dir" >/dev/null
