#!/usr/bin/env bash
# Installs what the peer benchmark drivers need; safe to run again (does
# nothing when all is there). Needs root for apt-get, and node >= 20 + npm.
#   rq        Debian's python3-rq, for /usr/bin/python3 (not a pyenv python)
#   BullMQ, bee-queue, ioredis   the versions in package-lock.json, into ./node_modules
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! /usr/bin/python3 -c 'import rq' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Fetch the package lists only when the cached ones do not know python3-rq.
  if ! apt-get install -y python3-rq; then
    apt-get update
    apt-get install -y python3-rq
  fi
  /usr/bin/python3 -c 'import rq' || { echo "install.sh: python3-rq installed but /usr/bin/python3 cannot import rq" >&2; exit 1; }
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool not found (node >= 20 needed)" >&2; exit 1; }
done
if [[ ! -d $here/node_modules/bullmq || ! -d $here/node_modules/bee-queue || ! -d $here/node_modules/ioredis ]]; then
  # Not `npm ci`: the registry reachable here lacks msgpackr-extract's optional
  # builds for other platforms, so the lock file cannot list them and `npm ci`
  # refuses it as out of sync. `npm install --no-save` installs the locked
  # versions all the same and leaves package-lock.json as it is.
  (cd "$here" && npm install --no-save --no-audit --no-fund)
fi
