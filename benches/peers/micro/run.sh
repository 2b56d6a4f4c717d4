#!/usr/bin/env bash
# The README's peer table: spawn+join, yield round trip, channel ping-pong (all on one worker:
# GOMAXPROCS=1, tokio's current-thread runtime, may with one worker, a 1-worker hilos runtime;
# std's kernel threads as they are) and memory per parked thread (10,000 parked), for hilos, std,
# Go, tokio and may, in one run. Each program runs ROUNDS times (default 3), interleaved; the
# table gives the median of the rounds and their range.
#
# Needs Go (apt-get install golang-go) and the crates.io registry (tokio, may).
set -euo pipefail
cd "$(dirname "$0")"
rounds=${ROUNDS:-3}

cargo build --release --quiet
go build -o target/go-micro micro.go
versions="$(go version | awk '{print $3}'); $(cargo tree --quiet --depth 1 --prefix none \
    | grep -E '^(tokio|may) ' | awk '{print $1, $2}' | tr '\n' ';' | sed 's/;$//')"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
peers=(hilos std go tokio may)
for r in $(seq "$rounds"); do
    for p in "${peers[@]}"; do
        echo "round $r/$rounds: $p" >&2
        if [ "$p" = go ]; then
            GOMAXPROCS=1 ./target/go-micro >>"$out/$p"
        else
            "./target/release/$p" >>"$out/$p"
        fi
    done
done

# One row per figure: median (min-max) of the rounds for each peer.
python3 - "$out" "${peers[@]}" <<'PY'
import os, statistics, sys
out, peers = sys.argv[1], sys.argv[2:]
rows = [("spawn_join_ns", "spawn + join, ns"), ("yield_round_trip_ns", "yield round trip, ns"),
        ("ping_pong_ns", "channel ping-pong, ns"), ("parked_bytes", "memory/parked thread, B")]
vals = {}
for p in peers:
    for line in open(os.path.join(out, p)):
        k, v = line.split()
        vals.setdefault((p, k), []).append(float(v))
def cell(p, k):
    v = vals.get((p, k))
    if not v:
        return "-"
    m, lo, hi = statistics.median(v), min(v), max(v)
    fmt = (lambda x: f"{x:,.0f}") if m >= 100 else (lambda x: f"{x:.1f}")
    return f"{fmt(m)} ({fmt(lo)}-{fmt(hi)})"
print("| | " + " | ".join(peers) + " |")
print("|---|" + "---:|" * len(peers))
for k, label in rows:
    print(f"| {label} | " + " | ".join(cell(p, k) for p in peers) + " |")
PY
echo "versions: $versions; $(rustc --version)"
