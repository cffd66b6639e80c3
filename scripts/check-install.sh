#!/usr/bin/env bash
# Installs a build into a scratch DESTDIR and compiles a tiny program against it
# with nothing but `pkg-config --cflags --libs streamfleet`, static and shared.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/${1:-build}"
dest=$(mktemp -d /tmp/streamfleet-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT

meson install -C "$build" --destdir "$dest" --quiet >/dev/null
pcdir=$(dirname "$(find "$dest" -name streamfleet.pc | head -n1)")
export PKG_CONFIG_PATH="$pcdir"
export PKG_CONFIG_SYSROOT_DIR="$dest"

cat >"$dest/consumer.cpp" <<'CPP'
#include <streamfleet/streamfleet.hpp>
#include <iostream>
int main() {
    try {
        throw streamfleet::InvalidArgument("queue name is empty");
    } catch (const streamfleet::Error& e) {
        std::cout << "streamfleet " << streamfleet::version() << ": " << e.what() << "\n";
    }
}
CPP
# shellcheck disable=SC2046
g++ -std=c++20 -o "$dest/consumer" "$dest/consumer.cpp" $(pkg-config --cflags --libs streamfleet)
libdir=$(pkg-config --variable=libdir streamfleet)
# pkgconf already prefixes the sysroot to variables.
out=$(LD_LIBRARY_PATH="$libdir" "$dest/consumer")
echo "$out"
[[ "$out" == "streamfleet $(cd "$root" && meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])'): queue name is empty" ]]
# shellcheck disable=SC2046
g++ -std=c++20 -o "$dest/consumer-static" "$dest/consumer.cpp" -DSTREAMFLEET_STATIC \
  $(pkg-config --static --cflags --libs streamfleet | sed 's/-lstreamfleet/-l:libstreamfleet.a/')
"$dest/consumer-static" >/dev/null
