#!/bin/sh
# The echo server of the comparison harness written four ways: hilos (a green thread per
# connection), std (a kernel thread per connection), Go (a goroutine per connection, echo.go) and
# tokio (a task per connection, tokio-echo/), each loaded by the harness's own closed-loop load
# generator (`compare --load`). The server runs on the upper half of the CPUs and the load
# generator on the lower half (taskset), so that neither takes the other's CPU; each runtime gets
# one worker thread per CPU it may use (hilos sizes itself from its CPUs, GOMAXPROCS for Go,
# worker_threads for tokio). Rounds interleave the servers, so their figures come from the same
# minutes.
#
# Usage: benches/peers/echo/run.sh [ROUNDS] [CONNS...]   (defaults: 3 rounds, 1000 10000)
# Needs cargo, go (Debian: apt-get install golang-go), taskset and at least 2 CPUs. Each line
# printed is one run: SERVER conns=.. rate_kps=.. failed=.. server_us=.. server_user_us=..
# client_us=.. (CPU time per request, from /proc).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
rounds=${1:-3}
shift 2>/dev/null || true
conns=${*:-"1000 10000"}
target=${CARGO_TARGET_DIR:-$root/target}

n=$(nproc)
if [ "$n" -lt 2 ]; then
	echo "run.sh: needs at least 2 CPUs (has $n)" >&2
	exit 2
fi
half=$((n / 2))
client_cpus=$(seq -s, 0 $((half - 1)))
server_cpus=$(seq -s, "$half" $((n - 1)))
server_workers=$((n - half))

(cd "$root" && cargo build --release --quiet -p compare)
(cd "$here/tokio-echo" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet)
(cd "$here" && go build -o "$target/peers/echo-go" echo.go)
compare="$target/release/compare"
echo "# $(go version); tokio $(sed -n '/^name = "tokio"$/{n;s/version = "\(.*\)"/\1/p}' "$here/tokio-echo/Cargo.lock"); $(rustc --version)"
echo "# $n CPUs: servers on $server_cpus ($server_workers worker(s)), load generator on $client_cpus; load $(cut -d' ' -f1-3 /proc/loadavg)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The harness's servers serve until their standard input ends: a FIFO held open here.
mkfifo "$tmp/stdin"
exec 3<>"$tmp/stdin"

one() { # SERVER CONNS
	out="$tmp/addr"
	: >"$out"
	case $1 in
	hilos) taskset -c "$server_cpus" "$compare" --hilos-net-serve hilos-echo <"$tmp/stdin" >"$out" & ;;
	std) taskset -c "$server_cpus" "$compare" --hilos-net-serve std-echo <"$tmp/stdin" >"$out" & ;;
	go) GOMAXPROCS=$server_workers taskset -c "$server_cpus" "$target/peers/echo-go" >"$out" & ;;
	tokio) taskset -c "$server_cpus" "$target/peers/release/tokio-echo" "$server_workers" >"$out" & ;;
	esac
	pid=$!
	i=0
	while [ ! -s "$out" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	addr=$(head -n 1 "$out")
	if [ -z "$addr" ]; then
		echo "$1 conns=$2 error=the server did not start"
	else
		echo "$1 $(taskset -c "$client_cpus" "$compare" --load "$addr" "$2" 2 "$pid")"
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	sleep 0.5 # let the closed connections' state drain
}

for r in $(seq "$rounds"); do
	for c in $conns; do
		for s in hilos std go tokio; do
			one "$s" "$c"
		done
	done
done
