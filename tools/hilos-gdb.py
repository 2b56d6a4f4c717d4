# gdb support for hilos's green threads (x86_64 and aarch64 Linux), in the spirit of Go's
# runtime-gdb.py.
#
#   gdb -p PID -x tools/hilos-gdb.py          (or `source tools/hilos-gdb.py` in a session)
#   (gdb) hilos threads                       one line per started green thread
#   (gdb) hilos bt 17                         backtrace of green thread 17 (an id or a name)
#
# `info threads` and `thread apply all bt` show the worker kernel threads and the green thread
# each one runs; a parked green thread is on no kernel thread, so gdb cannot see it. This script
# finds the green threads through hilos's debugger list (`HILOS_DEBUG_WORKERS`, src/park/debug.rs:
# every worker's context, and each worker's list of started green threads), and prints a parked
# thread's backtrace from the registers its switch saved on its stack (the switch frame of
# src/arch/x86_64.s or src/arch/aarch64.s). To do that it points the selected kernel thread's
# stack pointer and program counter into that frame for the length of one `bt`, then puts them
# back, as Go's `goroutine N bt` does: do not interrupt it. The program counter chosen is the
# switch routine's first instruction on the resumed stack, where the routine's CFI describes the
# saved frame (the callee-saved registers at their slots, the return address above them), so
# gdb's own unwinder restores them. Threads spawned and not yet started have no frames and are
# not listed (a thread dump lists them). Needs the program's debug info. Under qemu-user's gdb
# stub (`qemu-aarch64 -g PORT` and `gdb-multiarch`, as tests/gdb.rs does) it works the same.

import re

import gdb


def _str_at(ptr, length):
    if int(ptr) == 0 or int(length) == 0:
        return ""
    mem = gdb.selected_inferior().read_memory(int(ptr), int(length))
    return bytes(mem).decode("utf-8", "replace")


def _fat_str(v):
    """A `&str`/`Box<str>` value: its data pointer and length fields."""
    names = [f.name for f in v.type.fields()]
    if "data_ptr" in names:
        return _str_at(v["data_ptr"], v["length"])
    return str(v)


def _green(header):
    return header["kind"]["Green"]["__0"]


def _name(header):
    some = header["name"]["Some"]["__0"]
    if int(some["data_ptr"]) == 0:
        return "<unnamed>"
    return _fat_str(some)


def _id(header):
    m = re.search(r"\((\d+)\)", str(header["id"]))
    return int(m.group(1)) if m else 0


def _state(g):
    s = str(g["state"]["value"]["value"])
    s = s.replace("hilos::task::wait::", "").replace("ThreadState::", "").replace("IoOp::", "")
    m = re.match(r"Io\s*\{op: (\w+), fd: (-?\d+)\}", s)
    if m:
        return "%s fd %s" % (m.group(1).lower(), m.group(2))
    m = re.match(r"Sleep", s)
    if m:
        return "sleep"
    # CamelCase to the dump's words: ChannelRecv -> channel recv, RwLock -> rwlock.
    if s == "RwLock":
        return "rwlock"
    return re.sub(r"(?<!^)([A-Z])", r" \1", s).lower()


def _location(g):
    loc = g["spawned_at"].dereference()
    return "%s:%d:%d" % (_fat_str(loc["filename"]["pointer"]), int(loc["line"]), int(loc["col"]))


def _workers():
    gdb.execute("set language rust", to_string=True)
    try:
        head = gdb.parse_and_eval("hilos::park::debug::HILOS_DEBUG_WORKERS")
    except gdb.error as e:
        raise gdb.GdbError("hilos: no hilos runtime with debug info in this program (%s)" % e)
    p = head["p"]["value"]
    while int(p) != 0:
        local = p.dereference()
        yield local
        p = local["debug_next"]


def _threads():
    """(worker index, running?, header, green) for every started green thread."""
    for local in _workers():
        index = int(local["index"])
        current = int(local["current"])
        t = local["threads"]
        while int(t) != 0:
            h = t.dereference()
            g = _green(h)
            yield index, int(t) == current, h, g
            t = g["reg_next"]["value"]["value"]


class HilosPrefix(gdb.Command):
    """Commands for hilos's green threads: hilos threads, hilos bt ID|NAME."""

    def __init__(self):
        super().__init__("hilos", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)


class HilosThreads(gdb.Command):
    """List hilos's started green threads: id, name, state, worker, saved stack pointer, spawn site."""

    def __init__(self):
        super().__init__("hilos threads", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        n = 0
        for worker, running, h, g in _threads():
            state = "running" if running else _state(g)
            print(
                "thread %d '%s' [%s] worker %d, sp %#x, spawned at %s"
                % (_id(h), _name(h), state, worker, int(g["sp"]["value"]), _location(g))
            )
            n += 1
        print("%d started green threads" % n)


def _arch():
    """"x86_64" or "aarch64", from the selected frame's architecture."""
    name = gdb.selected_frame().architecture().name()
    if "x86-64" in name or "x86_64" in name:
        return "x86_64"
    if "aarch64" in name:
        return "aarch64"
    raise gdb.GdbError("hilos: no switch frame layout known for architecture %s" % name)


# Per architecture: the stack pointer's register, and the instruction of the switch routine that
# loads the resumed context's stack pointer (the resume point is the instruction after it).
_SP_LOADS = {
    "x86_64": ("$rsp", re.compile(r"^mov\S*\s+(?:%rsi,\s*%rsp|rsp,\s*rsi)$")),
    "aarch64": ("$sp", re.compile(r"^mov\s+sp,\s*x1$")),
}

_INSN = re.compile(r"^\s*(?:=>\s*)?(0x[0-9a-fA-F]+)(?:\s+<[^>]*>)?:\s*(.*?)\s*$")


def _resume_pc(arch):
    """The address in the switch routine where the saved frame is described by its CFI: right
    after the stack pointer was loaded (x86_64: CFA = rsp + 64; aarch64: CFA = sp + 176; the
    callee-saved registers at their slots)."""
    gdb.execute("set language c", to_string=True)
    try:
        text = gdb.execute("disassemble hilos_v0_switch_ret", to_string=True)
    finally:
        gdb.execute("set language rust", to_string=True)
    load = _SP_LOADS[arch][1]
    after = False
    for line in text.splitlines():
        m = _INSN.match(line)
        if not m:
            continue
        if after:
            return int(m.group(1), 16)
        after = bool(load.match(m.group(2).replace("\t", " ").strip()))
    raise gdb.GdbError("hilos: cannot find the switch routine's resume point")


class HilosBt(gdb.Command):
    """Backtrace of a parked hilos green thread, by id or name: hilos bt ID|NAME [bt options]."""

    def __init__(self):
        super().__init__("hilos bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        words = arg.split()
        if not words:
            raise gdb.GdbError("usage: hilos bt ID|NAME")
        key, rest = words[0], " ".join(words[1:])
        for _, running, h, g in _threads():
            if str(_id(h)) == key or _name(h) == key:
                break
        else:
            raise gdb.GdbError("hilos: no started green thread %s" % key)
        print("green thread %d '%s' [%s]:" % (_id(h), _name(h), _state(g)))
        if running:
            print("(running on its worker: see that kernel thread's own backtrace)")
            return
        arch = _arch()
        sp_reg = _SP_LOADS[arch][0]
        sp = int(g["sp"]["value"])
        pc = _resume_pc(arch)
        old_sp = int(gdb.parse_and_eval(sp_reg))
        old_pc = int(gdb.parse_and_eval("$pc"))
        try:
            gdb.execute("set %s = %d" % (sp_reg, sp))
            gdb.execute("set $pc = %d" % pc)
            gdb.execute("bt %s" % rest)
        finally:
            gdb.execute("set %s = %d" % (sp_reg, old_sp))
            gdb.execute("set $pc = %d" % old_pc)


HilosPrefix()
HilosThreads()
HilosBt()
