#!/usr/bin/env bash
# README command 1: install what is missing, build, start a throwaway
# redis-server on a free loopback port, run the demo against it, and remove
# the server and its data afterwards.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

scripts/install-deps.sh
scripts/build.sh build

# shellcheck source=scripts/throwaway-redis.sh
source scripts/throwaway-redis.sh

build/examples/quickstart --redis "$redis_url"
