#!/usr/bin/env bash
# Builds tests/arch/harness.c against the crate's own context-switch assembly (src/arch/*.s) for
# x86_64 and aarch64, runs both (aarch64 under qemu-aarch64 unless the host is aarch64), prints
# one line per check and a final "N passed, M failed" line, and exits non-zero on any failure.
#
# Needs gcc for the host, and for the other architecture its cross gcc and qemu-user:
#   apt-get install qemu-user gcc-aarch64-linux-gnu          (on an x86_64 host)
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
host=$(uname -m)

# arch -> compiler, extra flags, runner
case "$host" in
    x86_64)
        archs=(x86_64 aarch64)
        cc_x86_64=gcc; flags_x86_64=(); run_x86_64=()
        cc_aarch64=aarch64-linux-gnu-gcc; flags_aarch64=(-static); run_aarch64=(qemu-aarch64)
        install_hint="apt-get install qemu-user gcc-aarch64-linux-gnu"
        ;;
    aarch64)
        archs=(aarch64 x86_64)
        cc_aarch64=gcc; flags_aarch64=(); run_aarch64=()
        cc_x86_64=x86_64-linux-gnu-gcc; flags_x86_64=(-static); run_x86_64=(qemu-x86_64)
        install_hint="apt-get install qemu-user gcc-x86-64-linux-gnu"
        ;;
    *)
        echo "FAIL run.sh: unsupported host architecture $host (hilos supports x86_64 and aarch64)"
        echo "0 passed, 1 failed"
        exit 1
        ;;
esac

missing=()
for arch in "${archs[@]}"; do
    cc_var="cc_$arch"; run_var="run_$arch[@]"
    command -v "${!cc_var}" >/dev/null 2>&1 || missing+=("${!cc_var}")
    for tool in "${!run_var}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
done
if ((${#missing[@]})); then
    echo "FAIL run.sh: missing ${missing[*]}: $install_hint" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hilos-arch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cflags=(-std=c11 -O2 -g -Wall -Wextra -Werror -fasynchronous-unwind-tables)
passed=0
failed=0

for arch in "${archs[@]}"; do
    cc_var="cc_$arch"; flags_var="flags_$arch[@]"; run_var="run_$arch[@]"
    exe="$tmp/harness-$arch"
    if ! "${!cc_var}" "${cflags[@]}" "${!flags_var}" -o "$exe" \
            "$here/harness.c" "$root/src/arch/$arch.s" >"$tmp/build-$arch.log" 2>&1; then
        cat "$tmp/build-$arch.log"
        echo "FAIL $arch: harness does not build"
        failed=$((failed + 1))
        continue
    fi
    "${!run_var}" "$exe" >"$tmp/out-$arch.log" 2>&1
    status=$?
    cat "$tmp/out-$arch.log"
    p=$(grep -c '^ok ' "$tmp/out-$arch.log")
    f=$(grep -c '^FAIL ' "$tmp/out-$arch.log")
    passed=$((passed + p))
    failed=$((failed + f))
    # A crash prints no FAIL line for the check that crashed: count it.
    if ((status != 0 && f == 0)); then
        echo "FAIL $arch: harness exited with status $status"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
((failed == 0))
