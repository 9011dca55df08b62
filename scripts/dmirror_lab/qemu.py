"""QEMU: the guest's memory layout, its command line, and following its console
(progress lines, kernel faults, and the watchdog that ends a boot whose kernel
is no longer fit to run cases)."""

import re
import subprocess
import threading
import time

from . import splats
from .common import BENCH, LabError, fmt_secs, say

SPM_SIZE = 256 << 20
SHARE_TAG = "labshare"


def spm_layout(mem_mib):
    """Where QEMU's pc machine puts RAM, and the 2 x 256 MiB we reserve at
    its top for the coherent devices. Returns (spm0, spm1, memmap arg)."""
    mem = mem_mib << 20
    # pc: from 3.5 GiB up, 3 GiB below 4 GiB and the rest from 4 GiB up
    top = 0x100000000 + (mem - 0xC0000000) if mem >= 0xE0000000 else mem
    spm0 = top - 2 * SPM_SIZE
    spm1 = top - SPM_SIZE
    return spm0, spm1, f"memmap={2 * SPM_SIZE >> 20}M${spm0:#x}"


def kernel_cmdline(thp, memmap, panic_on_oops=False, append=None, builtin_spm=None):
    """thp None: the kernel's configured default (the mm-ci profile).
    builtin_spm (spm0, spm1): a built-in test_hmm takes its addresses here."""
    words = ["console=ttyS0,115200", "rdinit=/init", "panic=-1", "printk.devkmsg=on",
             "log_buf_len=32M", f"transparent_hugepage={thp}" if thp else "", "hugepages=4", memmap,
             "nokaslr", "oops=panic" if panic_on_oops else ""]
    if builtin_spm:
        words += [f"test_hmm.spm_addr_dev0={builtin_spm[0]:#x}",
                  f"test_hmm.spm_addr_dev1={builtin_spm[1]:#x}"]
    words += list(append or [])
    out = []
    for w in words:
        if w and w not in out:
            out.append(w)
    return " ".join(out)


def numa_args(nodes_mib, cpus):
    """-object/-numa options for NUMA nodes of the given sizes, CPUs split evenly
    (as vng --numa does), or [] for none."""
    if not nodes_mib:
        return []
    per = max(1, cpus // len(nodes_mib))
    out = []
    for i, size in enumerate(nodes_mib):
        first = min(i * per, cpus - 1)
        last = cpus - 1 if i == len(nodes_mib) - 1 else min(first + per - 1, cpus - 1)
        out += ["-object", f"memory-backend-ram,id=mem{i},size={size}M",
                "-numa", f"node,nodeid={i},cpus={first}-{last},memdev=mem{i}"]
    return out


def smp(cpus, nodes_mib):
    """-smp: with NUMA nodes, one socket per node, so no cache is shared across nodes
    (else the kernel warns at boot that a CPU's LLC sibling is on another node)."""
    if not nodes_mib or cpus % len(nodes_mib):
        return str(cpus)
    return f"{cpus},sockets={len(nodes_mib)},cores={cpus // len(nodes_mib)},threads=1"


def share_args(host_dir):
    """A virtio-9p device exporting host_dir to the guest (mount tag SHARE_TAG)."""
    return ["-fsdev", f"local,id=labfs,path={host_dir},security_model=none",
            "-device", f"virtio-9p-pci,fsdev=labfs,mount_tag={SHARE_TAG}"]


def qemu_cmd(guest, info, initrd, serial, share=None):
    """(argv, kernel cmdline). guest: the settings of this boot (mem, cpus, thp,
    numa, append, builtin, kvm, cpu); serial: the -serial options (console first)."""
    _, _, memmap = spm_layout(guest.mem)
    spm0, spm1, _ = spm_layout(guest.mem)
    append = kernel_cmdline(guest.thp, memmap, guest.panic_on_oops, guest.append,
                            (spm0, spm1) if guest.builtin else None)
    if guest.kvm:
        accel = ["-accel", "kvm", "-cpu", guest.cpu or "host"]
    else:
        accel = ["-accel", "tcg", "-cpu", guest.cpu or "max"]
    cmd = ["qemu-system-x86_64", "-M", "pc", "-nodefaults", "-display", "none", "-no-reboot",
           "-smp", smp(guest.cpus, guest.numa), "-m", f"{guest.mem}M", *numa_args(guest.numa, guest.cpus),
           "-kernel", info["bzImage"], "-initrd", initrd, "-append", append,
           *(share_args(share) if share else []), *accel, *serial]
    return cmd, append


MARKER = re.compile(r"dmirror-lab: (.*)$")


class ConsoleWatcher(threading.Thread):
    """Follows the guest console file: prints one line per finished case, and
    records what the boot driver acts on: a kernel fault (Oops, BUG, panic) and
    the case it hit, a case that has run too long, the guest stopping on its own."""

    def __init__(self, path, t0, counts, hang_after=120):
        super().__init__(daemon=True)
        self.path, self.t0, self.counts, self.hang_after = path, t0, counts, hang_after
        self.stop = False
        self.events = {}
        self.done = {"kselftest": 0, "dmirror": 0}
        self.current = None        # (suite, case, since) of the case running now
        self.last_case = None      # (suite, case) of the last case that began
        self.fault = None          # {"case": (suite, case) or None, "line": ..., "at": secs}
        self.stopped = None        # the guest's own STOP reason
        self.fatal = None          # a FATAL line from /init
        self.after_fault = []      # (suite, case) of cases that began after the fault: not valid

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

    def now(self):
        return time.time() - self.t0

    def line(self, line, now=None):
        if now is None:
            now = self.now()
        text = splats.strip_ts(line)
        m = MARKER.search(text)
        if not m:
            if self.fault is None and splats.FATAL.match(text):
                # between two cases the fault is the exit of the one that just ended
                case = self.current[:2] if self.current else self.last_case
                self.fault = {"case": case, "line": text, "at": now, "ended": self.current is None}
                say(f"  guest: kernel fault{' in ' + ' '.join(case) if case else ''}: {text}")
            return
        msg = m.group(1)
        if msg.startswith("init start"):
            self.events["init"] = now
            say(f"  guest: booted, init running after {fmt_secs(now)}")
        elif msg.startswith("SUITE "):
            parts = msg.split()
            self.events[f"{parts[1]}-{'end' if parts[2] == 'end' else 'start'}"] = now
            if parts[2] != "end":
                self.counts[parts[1]] = int(parts[2].split("=")[1])
                say(f"  guest: {parts[1]}: running {self.counts[parts[1]]} cases")
            else:
                say(f"  guest: {parts[1]}: finished")
        elif msg.startswith("BEGIN "):
            parts = msg.split()
            if len(parts) >= 3:
                self.current = (parts[1], parts[2], now)
                self.last_case = (parts[1], parts[2])
                if self.fault:      # the kernel had already failed: this case runs again
                    self.after_fault.append(self.last_case)
        elif msg.startswith("END "):
            parts = msg.split()
            if len(parts) < 4:
                return
            suite, name, rc = parts[1], parts[2], parts[3]
            self.current = None
            if self.fault and self.fault["case"] == (suite, name):
                self.fault["ended"] = True
            if suite in self.done:
                self.done[suite] += 1
                total = self.counts.get(suite, "?")
                say(f"  {suite:9} {self.done[suite]:3}/{total} {fmt_secs(now):>6}  {name}  {rc}")
            else:
                say(f"  guest: {name} {rc}")
        elif msg.startswith("STOP "):
            self.stopped = msg[5:]
            say(f"  guest: stops this boot: {self.stopped}")
        elif msg.startswith("FATAL "):
            self.fatal = msg[6:]
            say(f"  guest: {self.fatal}")
        elif msg.startswith("done"):
            self.events["done"] = now
        else:
            say(f"  guest: {msg}")

    def limit(self, case):
        """Seconds a case may run before it counts as hung: the harness kills a case
        at 30 s (the benchmark at 120 s), so only a task stuck in the kernel lasts."""
        # the extras (--extras, --stress, --guest-script) and the repetitions of an explore
        # scenario between one pair of markers run for minutes
        if case == "extra" or case.startswith("explore."):
            return max(self.hang_after, EXTRA_LIMIT)
        return self.hang_after + (90 if case.endswith("." + BENCH) else 0)

    def verdict(self, now=None):
        """Why the boot should end now, or None: "fault" (a fault, and its case has
        ended or had 20 s to), "hang" (a case ran past hang_after), "done" (the guest
        finished but has not powered off within 60 s)."""
        if now is None:
            now = self.now()
        if self.fault:
            if self.fault.get("ended") or self.current is None or now - self.fault["at"] >= 20:
                return "fault"
        elif self.current and now - self.current[2] >= self.limit(self.current[1]):
            return "hang"
        if "done" in self.events and now - self.events["done"] >= 60:
            return "done"
        return None


# seconds the extras may run before the boot counts as hung
EXTRA_LIMIT = 1800


def boot(cmd, console, qemu_log, timeout_min, hang_after):
    """Run QEMU until the guest powers off (or the watcher says the boot is over),
    printing its progress. Returns (wall seconds, the watcher, how it ended:
    "exit", "fault", "hang" or "done")."""
    t0 = time.time()
    watcher = ConsoleWatcher(console, t0, {}, hang_after)
    watcher.start()
    ended = "exit"
    with open(qemu_log, "wb") as log:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    p.wait(timeout=1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                why = watcher.verdict()
                if why:
                    ended = why
                    say(f"  guest: ending this boot ({why_text(why, watcher)})")
                    p.kill()
                    p.wait()
                    break
                if time.time() - t0 > timeout_min * 60:
                    p.kill()
                    p.wait()
                    raise LabError(f"the guest did not finish within {timeout_min} min; see {console} "
                                   f"(raise --timeout or look for a hang there)")
        finally:
            # what the console still holds is read before anyone looks at the watcher
            time.sleep(0.6)
            watcher.stop = True
            watcher.join()
    wall = time.time() - t0
    if ended == "exit" and p.returncode != 0:
        raise LabError(f"qemu exited with {p.returncode}; see {qemu_log}")
    return wall, watcher, ended


def why_text(why, watcher):
    if why == "fault":
        return "kernel fault: " + watcher.fault["line"]
    if why == "hang":
        suite, case, since = watcher.current
        return f"{suite} {case} has run for {fmt_secs(watcher.now() - since)} without ending"
    return "the guest finished but did not power off"
