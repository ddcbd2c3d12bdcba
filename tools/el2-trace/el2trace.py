#!/usr/bin/env python3
"""Instruction trace of one trap at EL2: boots partita under QEMU with its
gdbstub, stops at the N-th hit of a chosen hypervisor symbol, then at the
next exception entry (el2_guest_sync, the guest's synchronous exceptions,
which saves in the vector itself, or el2_trap_save, where the other vectors
branch), single-steps until the CPU leaves EL2
and prints where the instructions went (per function, inlined frames
resolved with addr2line -i) and, with --sequence, the run-length encoded
path.

Needs qemu-system-aarch64 (`cargo xtask test` installs it), gdb-multiarch,
nm and addr2line (on Debian: `apt-get install gdb-multiarch binutils`; the
script names what is missing). Example, the 10th virtio-iommu
notify of the bench guest (cargo xtask bench builds both files):

  tools/el2-trace/el2trace.py \\
      --bundle target/bundles/bench-viommu.bundle \\
      --after 'ViommuDevice<B>::post_events' --skip 9

Stepping through gdb costs about 1 ms per instruction: a notify of a few
thousand instructions takes seconds, a 64-request batch minutes.
"""

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

TARGET = "aarch64-unknown-none-softfloat"
# QEMU loads the image (linked at 0) at RAM base + 2 MiB.
LOAD = 0x4020_0000

GDB_SCRIPT = r'''
import gdb
LOAD, AFTER, SAVE, SKIP, OUT, LIMIT = {load}, {after}, {save}, {skip}, "{out}", {limit}
gdb.execute("set pagination off")
gdb.execute("target remote :{port}")
for a in AFTER:
    gdb.execute("hbreak *%#x" % (LOAD + a))
for _ in range(SKIP + 1):
    gdb.execute("continue", to_string=True)
gdb.execute("delete")
for a in SAVE:
    gdb.execute("hbreak *%#x" % (LOAD + a))
gdb.execute("continue", to_string=True)
gdb.execute("delete")
n = 0
with open(OUT, "w") as f:
    while n < LIMIT:
        try:
            pc = int(gdb.parse_and_eval("$pc"))
            el = (int(gdb.parse_and_eval("$cpsr")) >> 2) & 3
        except gdb.error:
            break  # stepping over the eret let the guest run on
        if el != 2:
            break
        f.write("%x\n" % (pc - LOAD))
        n += 1
        insn = int(gdb.parse_and_eval("*(unsigned int *)%#x" % pc))
        if insn & 0x3f008000 == 0x08008000:
            # A load-acquire, store-release or acquire/release exclusive
            # (LDAR, STLR, LDAXR, STLXR and their byte and halfword forms):
            # QEMU's gdbstub can lose a single step over one (the CPU runs
            # on to the end of the run), so run it to the next instruction.
            gdb.execute("tbreak *%#x" % (pc + 4), to_string=True)
            gdb.execute("continue", to_string=True)
        else:
            gdb.execute("stepi", to_string=True)
gdb.execute("kill")
'''


def symbols(elf, pattern, most=1, least=1):
    """Addresses of the text symbols whose demangled name contains pattern
    (at least `least`, at most `most`: a generic function may have several
    instances, e.g. one per guest-memory type)."""
    out = subprocess.run(["nm", "-C", elf], capture_output=True, text=True, check=True).stdout
    hits = [l for l in out.splitlines() if pattern in l and l[17:18].lower() == "t"]
    if not least <= len(hits) <= most:
        sys.exit(f"el2trace: {len(hits)} text symbols match {pattern!r}: {hits[:5]}")
    return [int(h.split()[0], 16) for h in hits]


def symbol(elf, pattern):
    """Address of the one symbol whose demangled name contains pattern."""
    return symbols(elf, pattern)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def symbolise(elf, pcs):
    """pc -> list of function names, innermost inlined frame first."""
    uniq = sorted(set(pcs))
    out = subprocess.run(
        ["addr2line", "-e", elf, "-f", "-i", "-C", "-a"] + [hex(p) for p in uniq],
        capture_output=True, text=True, check=True).stdout.splitlines()
    frames, cur, i = {}, None, 0
    while i < len(out):
        if out[i].startswith("0x"):
            cur = int(out[i], 16)
            frames[cur] = []
            i += 1
        else:
            frames[cur].append(short(out[i]))
            i += 2
    return frames


def short(name):
    for _ in range(4):
        name = re.sub(r"<[^<>]*>", "", name)
    return name.replace("hypervisor::", "")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elf", default=f"target/{TARGET}/release/hypervisor")
    ap.add_argument("--image", default=f"target/{TARGET}/release/partita.bin")
    ap.add_argument("--bundle", required=True, help="guest bundle (-initrd)")
    ap.add_argument("--after", required=True, help="symbol (substring of the demangled name) to wait for")
    ap.add_argument("--skip", type=int, default=0, help="hits of --after to let pass first")
    ap.add_argument("--limit", type=int, default=200000, help="most instructions to step")
    ap.add_argument("--sequence", action="store_true", help="also print the path, run-length encoded")
    ap.add_argument("--qemu", default="qemu-system-aarch64")
    ap.add_argument("--pcs", help="also write the stepped addresses (image offsets, hex) to this file")
    a = ap.parse_args()
    import shutil
    missing = [t for t in (a.qemu, "gdb-multiarch", "nm", "addr2line") if shutil.which(t) is None]
    if missing:
        sys.exit(f"el2trace: missing {', '.join(missing)} (Debian: apt-get install gdb-multiarch binutils;"
                 " QEMU: cargo xtask test installs it)")
    for f in (a.elf, a.image, a.bundle):
        if not os.path.exists(f):
            sys.exit(f"el2trace: no {f} (build it first: cargo xtask bench builds the image and the bench bundle)")

    # Every instance of --after counts (hardware breakpoints: at most 4).
    after = symbols(a.elf, a.after, 4)
    save = [symbol(a.elf, "el2_trap_save")] + symbols(a.elf, "el2_guest_sync", 1, 0)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pcs.txt")
        script = os.path.join(tmp, "trace.py")
        with open(script, "w") as f:
            f.write(GDB_SCRIPT.format(load=LOAD, after=after, save=save, skip=a.skip,
                                      out=out, limit=a.limit, port=port))
        qemu = subprocess.Popen(
            [a.qemu, "-M", "virt,virtualization=on,gic-version=3,iommu=smmuv3",
             "-cpu", "max,pauth-impdef=on", "-smp", "4", "-m", "1G", "-display", "none",
             "-serial", "null", "-monitor", "none", "-kernel", a.image, "-initrd", a.bundle,
             "-icount", "shift=0", "-seed", "1", "-gdb", f"tcp::{port}", "-S"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            subprocess.run(["gdb-multiarch", "-q", "-batch", "-x", script, a.elf],
                           capture_output=True, timeout=3600, check=False)
        finally:
            qemu.kill()
            qemu.wait()
        pcs = [int(l, 16) for l in open(out)] if os.path.exists(out) else []
    if not pcs:
        sys.exit("el2trace: nothing traced (did --after ever run?)")
    if a.pcs:
        with open(a.pcs, "w") as f:
            f.write("".join("%x\n" % p for p in pcs))
    frames = symbolise(a.elf, pcs)
    count = collections.Counter(pcs)
    inner, incl = collections.Counter(), collections.Counter()
    for pc, n in count.items():
        fr = frames.get(pc) or ["?"]
        inner[fr[0]] += n
        for f in set(fr):
            incl[f] += n
    print(f"{len(pcs)} instructions at EL2 (to the eret; from the vector for a synchronous"
          " exception of the guest, else from el2_trap_save: the vector's 4 before it are not"
          " stepped)")
    print("\nself (innermost inlined frame):")
    for f, n in inner.most_common(30):
        print(f"{n:7d}  {f}")
    print("\ninclusive of inlined frames (calls not included):")
    for f, n in incl.most_common(30):
        print(f"{n:7d}  {f}")
    if a.sequence:
        print("\npath (position, length, innermost frame):")
        runs = []
        for pc in pcs:
            f = (frames.get(pc) or ["?"])[0]
            if runs and runs[-1][0] == f:
                runs[-1][1] += 1
            else:
                runs.append([f, 1])
        pos = 0
        for f, n in runs:
            print(f"{pos:6d} {n:4d}  {f[:90]}")
            pos += n


if __name__ == "__main__":
    main()
