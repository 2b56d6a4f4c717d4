#!/bin/sh
# Builds skynet and the spawn burst for hilos (examples/skynet.rs), Go (skynet.go) and tokio
# (tokio-skynet/) and runs them beside one another, interleaved, so that their times and peak
# resident memory come from the same minutes of the same machine.
#
# Usage: benches/peers/run.sh [ROUNDS] [WORKERS] [CASES...]
#   ROUNDS   rounds of every case (default 3); each round runs hilos, Go, tokio in turn
#   WORKERS  worker threads of each runtime (GOMAXPROCS for Go; default 2)
#   CASES    MODE:LEAVES pairs (default: skynet:1000000 skynet:100000 burst:1000000)
# Needs cargo and go (Debian: apt-get install golang-go). Each line printed is one run:
#   RUNTIME MODE leaves=.. workers=.. sum=.. ms=.. maxrss_kb=..
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-3}
workers=${2:-2}
shift 2 2>/dev/null || shift $#
cases=${*:-"skynet:1000000 skynet:100000 burst:1000000"}
target=${CARGO_TARGET_DIR:-$root/target}

(cd "$root" && cargo build --release --quiet --example skynet)
(cd "$here/tokio-skynet" && CARGO_TARGET_DIR="$target/peers" cargo build --release --quiet)
(cd "$here" && go build -o "$target/peers/skynet-go" skynet.go)
echo "# $(go version); tokio $(sed -n '/^name = "tokio"$/{n;s/version = "\(.*\)"/\1/p}' "$here/tokio-skynet/Cargo.lock"); $(rustc --version)"
echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

for r in $(seq "$rounds"); do
	for c in $cases; do
		mode=${c%%:*}
		leaves=${c#*:}
		"$target/release/examples/skynet" "$leaves" "$workers" "$mode"
		GOMAXPROCS=$workers "$target/peers/skynet-go" "$leaves" "$mode"
		"$target/peers/release/tokio-skynet" "$leaves" "$workers" "$mode"
	done
done
