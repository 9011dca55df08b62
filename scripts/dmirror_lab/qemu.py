"""QEMU: the guest's memory layout, its command line, and following its console."""

import os
import re
import subprocess
import threading
import time

from .common import LabError, fmt_secs, say

SPM_SIZE = 256 << 20


def spm_layout(mem_mib):
    """Where QEMU's pc machine puts RAM, and the 2 x 256 MiB we reserve at
    its top for the coherent devices. Returns (spm0, spm1, memmap arg)."""
    mem = mem_mib << 20
    # pc: from 3.5 GiB up, 3 GiB below 4 GiB and the rest from 4 GiB up
    top = 0x100000000 + (mem - 0xC0000000) if mem >= 0xE0000000 else mem
    spm0 = top - 2 * SPM_SIZE
    spm1 = top - SPM_SIZE
    return spm0, spm1, f"memmap={2 * SPM_SIZE >> 20}M${spm0:#x}"


def kernel_cmdline(thp, memmap, panic_on_oops=False, append=None):
    return " ".join([
        "console=ttyS0,115200", "rdinit=/init", "panic=-1", "printk.devkmsg=on",
        "log_buf_len=32M", f"transparent_hugepage={thp}", "hugepages=4", memmap,
        "nokaslr", "oops=panic" if panic_on_oops else "",
        *(append or []),
    ]).replace("  ", " ").strip()


def qemu_cmd(args, info, initrd, serial):
    """(argv, spm0, spm1, kernel cmdline); serial: the -serial options (console first)."""
    spm0, spm1, memmap = spm_layout(args.mem)
    append = kernel_cmdline(args.thp, memmap, args.panic_on_oops, args.append)
    if args.kvm:
        accel = ["-accel", "kvm", "-cpu", args.cpu or "host"]
    else:
        accel = ["-accel", "tcg", "-cpu", args.cpu or "max"]
    cpus = args.cpus or min(2, os.cpu_count() or 1)
    cmd = ["qemu-system-x86_64", "-M", "pc", "-nodefaults", "-display", "none", "-no-reboot",
           "-smp", str(cpus), "-m", f"{args.mem}M", "-kernel", info["bzImage"],
           "-initrd", initrd, "-append", append, *accel, *serial]
    return cmd, spm0, spm1, append


class ConsoleWatcher(threading.Thread):
    """Follows the guest console file and prints one line per finished case."""

    def __init__(self, path, t0, counts):
        super().__init__(daemon=True)
        self.path, self.t0, self.counts = path, t0, counts
        self.stop = False
        self.events = {}
        self.done = {"kselftest": 0, "dmirror": 0}

    def run(self):
        pos, buf = 0, b""
        while True:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos += len(chunk)
            except FileNotFoundError:
                chunk = b""
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self.line(line.decode(errors="replace").strip())
            if self.stop and not chunk:
                return
            time.sleep(0.5)

    def line(self, line, now=None):
        m = re.search(r"dmirror-lab: (.*)$", line)
        if not m:
            if "Kernel panic" in line:
                say(f"  guest: {line}")
            return
        msg = m.group(1)
        if now is None:
            now = time.time() - self.t0
        if msg.startswith("init start"):
            self.events["init"] = now
            say(f"  guest: booted, init running after {fmt_secs(now)}")
        elif msg.startswith("SUITE "):
            parts = msg.split()
            self.events[f"{parts[1]}-{'end' if parts[2] == 'end' else 'start'}"] = now
            if parts[2] != "end":
                self.counts[parts[1]] = int(parts[2].split("=")[1])
                say(f"  guest: {parts[1]}: running {self.counts[parts[1]]} cases one by one")
            else:
                say(f"  guest: {parts[1]}: finished")
        elif msg.startswith("END "):
            parts = msg.split()
            suite, name, rc = parts[1], parts[2], parts[3]
            if suite in self.done:
                self.done[suite] += 1
                total = self.counts.get(suite, "?")
                say(f"  {suite:9} {self.done[suite]:3}/{total} {fmt_secs(now):>6}  {name}  {rc}")
            else:
                say(f"  guest: {name} {rc}")
        elif msg.startswith("done"):
            self.events["done"] = now
        elif not msg.startswith("BEGIN"):
            say(f"  guest: {msg}")


def boot(cmd, console, qemu_log, timeout_min):
    """Run QEMU until the guest powers off, printing its progress.
    Returns (wall seconds, the console events' times)."""
    t0 = time.time()
    watcher = ConsoleWatcher(console, t0, {})
    watcher.start()
    with open(qemu_log, "wb") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            p.wait(timeout=timeout_min * 60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            watcher.stop = True
            watcher.join()
            raise LabError(f"the guest did not finish within {timeout_min} min; see {console} "
                           f"(raise --timeout or look for a hang there)") from None
    wall = time.time() - t0
    watcher.stop = True
    watcher.join()
    if p.returncode != 0:
        raise LabError(f"qemu exited with {p.returncode}; see {os.path.dirname(qemu_log)}/qemu.log")
    return wall, watcher.events
