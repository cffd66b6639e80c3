# Sourced by scripts/demo.sh and bench/run: starts a redis-server without
# persistence on a free loopback port in a temp dir, waits until it answers,
# and removes it (and the dir) when the calling script exits.
# Sets: redis_port, redis_url, redis_dir.

redis_dir=$(mktemp -d /tmp/streamfleet-redis-XXXXXX)
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis_url="redis://127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' --appendonly no \
  --daemonize no --logfile "$redis_dir/redis.log" &
redis_pid=$!
_stop_throwaway_redis() {
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  rm -rf "$redis_dir"
}
trap _stop_throwaway_redis EXIT
for _ in $(seq 1 200); do
  if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done
