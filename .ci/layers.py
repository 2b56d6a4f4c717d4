#!/usr/bin/env python3
"""Fails if the top-level modules of src/ depend on one another in a cycle.

DESIGN-NOTES section 7: the module graph is a straight stack (arch and stack at the bottom, then
the control block, park/wake, the driver, the scheduler, the spawn engine, runtime, and the
std-shaped faces on top). A module depends on another when its non-test code names it as
`crate::other` (also inside `use crate::{a, b::c}` groups). Test code (from a `#[cfg(test)]` or
`#[cfg(all(test, ...))]` line to the end of its file, and files that are test modules) and comments
do not count.

usage: .ci/layers.py [SRC_DIR] [--print]   exit 1 on a cycle, printing it.
"""
import os
import re
import sys

src = "src"
show = False
for a in sys.argv[1:]:
    if a == "--print":
        show = True
    else:
        src = a

mods = sorted(
    n[:-3] if n.endswith(".rs") else n
    for n in os.listdir(src)
    if (n.endswith(".rs") and n not in ("lib.rs", "main.rs")) or os.path.isdir(os.path.join(src, n))
)


def files_of(m):
    f = os.path.join(src, m + ".rs")
    out = [f] if os.path.exists(f) else []
    d = os.path.join(src, m)
    for root, _, names in os.walk(d):
        out += [os.path.join(root, n) for n in names if n.endswith(".rs")]
    return out


def is_test_file(path):
    base = os.path.basename(path)
    return base in ("tests.rs",) or base.endswith("_tests.rs") or "loom_models" in base


def code_lines(path):
    in_block = 0
    for line in open(path, errors="replace"):
        s = line.strip()
        if re.match(r"#\[cfg\((all\()?test\b", s):
            return  # the rest of the file is test code
        if in_block:
            if "*/" in s:
                in_block = 0
            continue
        if s.startswith("/*"):
            in_block = "*/" not in s
            continue
        yield re.sub(r"//.*", "", line)


edges = {m: set() for m in mods}
single = re.compile(r"\bcrate::(\w+)")
group = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
for m in mods:
    for p in files_of(m):
        if is_test_file(p):
            continue
        text = "".join(code_lines(p))
        names = set(single.findall(text))
        for g in group.findall(text):
            names |= {part.strip().split("::")[0] for part in g.split(",") if part.strip()}
        edges[m] |= {n for n in names if n in mods and n != m}

if show:
    for m in mods:
        print(f"{m} -> {', '.join(sorted(edges[m])) or '(nothing)'}")

# Depth-first search; a grey node met again closes a cycle.
state, stack, cycles = {}, [], []


def visit(v):
    state[v] = "grey"
    stack.append(v)
    for w in sorted(edges[v]):
        if state.get(w) == "grey":
            cycles.append(stack[stack.index(w):] + [w])
        elif w not in state:
            visit(w)
    stack.pop()
    state[v] = "black"


for v in mods:
    if v not in state:
        visit(v)
for c in cycles:
    print("module cycle:", " -> ".join(c))
if cycles:
    sys.exit(1)
print(f"layers: {len(mods)} top-level modules of {src}/, no cycle")
