#!/usr/bin/env bash
# Installs the Debian packages streamfleet needs, and only those that are
# missing: apt-get update runs once, and not at all when everything is there.
# Usage: scripts/install-deps.sh [extra-package ...]
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config python3
  libhiredis-dev libuv1-dev libmsgpack-cxx-dev libspdlog-dev doctest-dev
  libmicrohttpd-dev nlohmann-json3-dev libcurl4-openssl-dev python3-prometheus-client
  chromium chromium-driver python3-selenium
  redis-server redis-tools
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
