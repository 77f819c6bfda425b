#!/usr/bin/env bash
# Starts a private redis-server for manual tests and benchmarks: a free
# loopback port, a new temporary data directory, AOF on, no RDB snapshots.
# Prints the port on stdout; where the data is and how to stop it go to stderr.
#
#   port=$(scripts/redis-test.sh)                  # appendfsync everysec
#   port=$(APPENDFSYNC=always scripts/redis-test.sh)
#   scripts/redis-test.sh stop DIR                 # kill it and remove DIR
#
# The Go tests do not need this: they start their own servers (state/redistest).
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
	echo "redis-server not found on PATH: run 'make tools' to install it" >&2
	exit 1
fi

if [[ ${1:-} == stop ]]; then
	dir=${2:?usage: $0 stop DIR}
	if [[ -f $dir/redis.pid ]]; then
		kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
	fi
	rm -rf -- "$dir"
	exit 0
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tether-redis-XXXXXX")
for _ in 1 2 3 4 5 6 7 8; do
	port=$((20000 + RANDOM % 40000))
	# Something answers there already: pick another.
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		continue
	fi
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
		--appendonly yes --appendfsync "${APPENDFSYNC:-everysec}" --save "" \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
	for _ in $(seq 100); do
		if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
			echo "redis-server on 127.0.0.1:$port, data in $dir; stop it with: $0 stop $dir" >&2
			echo "$port"
			exit 0
		fi
		sleep 0.1
	done
	if [[ -f $dir/redis.pid ]]; then
		kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true
		rm -f "$dir/redis.pid"
	fi
done
echo "could not start redis-server; its log:" >&2
tail -5 "$dir/redis.log" >&2 || true
rm -rf -- "$dir"
exit 1
