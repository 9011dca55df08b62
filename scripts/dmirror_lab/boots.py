"""One cell's run as a series of boots: a kernel fault (Oops, BUG, panic) or a
case that hangs in the kernel is a finding of the case that caused it; the
boot ends there, and a fresh guest carries on from the next case, so one
crash cannot turn into false disagreements in the cases after it.

The pure part (what the next boot runs, how the boots' results merge) is
apart from the part that boots QEMU, so it can be tested on recorded boots."""

import dataclasses
import os
import re
import shutil

from . import guest, initramfs, qemu, splats
from .common import BENCH, LabError, read_text, say

STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
SUITE_MARK = re.compile(r"dmirror-lab: SUITE (\S+) (?:cases=\d+ (start)|(end))")
END_MARK = re.compile(r"dmirror-lab: END (kselftest|dmirror) ")


@dataclasses.dataclass
class Boot:
    """What one boot did. ended: "done" (the guest finished its todo), "stop"
    (the guest stopped itself, e.g. lockdep went off), "fault" (a kernel fault),
    "hang" (a case never ended), "early" (it ended before or outside any case)."""
    number: int
    dir: str
    todo: dict
    ended: str
    faulted: tuple | None = None     # (suite, case) that the fault or hang hit
    why: str = ""                    # the fault's first line, the hang, the stop reason
    wall: float = 0.0
    # cases that began after the fault, before the lab ended the boot: they ran on a
    # kernel that had already failed, so their results do not count and they run again
    after_fault: list = dataclasses.field(default_factory=list)

    def valid(self, suite, name):
        return [suite, name] not in self.after_fault and (suite, name) not in self.after_fault

    @property
    def results(self):
        return os.path.join(self.dir, "results")


def plan(kselftest_names, dmirror_names, bench, only, upto=None):
    """({suite: cases to run}, {suite: {case: why it does not run}}) in run order;
    upto: the last case each suite runs (a finding with what ran before it)."""
    todo, notrun = {}, {}
    for suite, names in (("kselftest", kselftest_names), ("dmirror", dmirror_names)):
        todo[suite], notrun[suite] = [], {}
        past = False
        for n in names:
            if past:
                notrun[suite][n] = f"after {upto} (--upto)"
            elif n.endswith("." + BENCH) and not bench:
                notrun[suite][n] = f"{BENCH} runs only with --bench"
            elif only and not re.search(only, n):
                notrun[suite][n] = "filtered out by --only"
            else:
                todo[suite].append(n)
            past = past or n == upto
    return todo, notrun


def finished(boot):
    """{suite: set of cases with a result} of one boot."""
    rcs, _ = guest.read_rc(os.path.join(boot.results, "kselftest.rc"))
    _, cases, _ = guest.dmirror_results(boot.results)
    return {"kselftest": {n for n in rcs if boot.valid("kselftest", n)},
            "dmirror": {n for n in cases if boot.valid("dmirror", n)}}


def next_todo(boot, done, c_resumable=True):
    """The todo of the boot after `boot`: every case of its todo without a result,
    except the one the fault or hang hit (its finding is recorded); None when
    there is no next boot (the guest finished, or nothing is left). A C suite
    whose harness cannot start at a given case (no -r: 6.1) is not resumed."""
    if boot.ended == "done":
        return None
    rest = {s: [n for n in boot.todo.get(s, []) if n not in done.get(s, set())
                and (s, n) != boot.faulted] for s in guest.SUITES}
    if not c_resumable:
        rest["kselftest"] = []
    if not any(rest.values()):
        return None
    if boot.ended == "early" and rest == {s: list(boot.todo.get(s, [])) for s in guest.SUITES}:
        return None     # nothing ran: another boot would end the same way
    return rest


def outcome(watcher, ended):
    """(ended, faulted case, why) of a boot from its console watcher and how QEMU ended."""
    if watcher.fault:
        case = watcher.fault["case"]
        return ("fault" if case else "early"), case, watcher.fault["line"]
    if ended == "hang":
        suite, case, _ = watcher.current
        return "hang", (suite, case), f"no END {int(watcher.limit(case))} s after BEGIN (hung in the kernel)"
    if watcher.stopped:
        m = re.match(r"(hang|fault) (kselftest|dmirror) ([\w.]+)", watcher.stopped)
        if m:
            return m.group(1), (m.group(2), m.group(3)), watcher.stopped
        if watcher.stopped.startswith("fault"):
            return "early", None, watcher.stopped
        return "stop", None, watcher.stopped
    if "done" in watcher.events:
        return "done", None, ""
    if watcher.fatal:
        return "early", None, watcher.fatal
    case = watcher.current[:2] if watcher.current else None
    return ("fault" if case else "early"), case, "the guest ended without a report (reset or panic)"


def boot_log(boot):
    """The kernel log of one boot: its dmesg when the guest wrote one (it did not
    die), else what the console caught."""
    dmesg = os.path.join(boot.results, "dmesg.txt")
    if boot.ended in ("done", "stop") and os.path.exists(dmesg) and os.path.getsize(dmesg):
        return read_text(dmesg)
    return read_text(os.path.join(boot.dir, "console.log"), "")


def kernel_log(boots):
    """kernel.log: every boot's log after a line naming the boot and how it ended."""
    out = []
    for b in boots:
        out.append(splats.boot_line(b.number, b.ended + (": " + b.why if b.why else "")))
        out += boot_log(b).splitlines()
    return "\n".join(out) + "\n"


def suite_times(log_text):
    """{suite: seconds} from each SUITE start marker to its end marker (the kernel's
    timestamps), summed over boots; a suite a fault cut short counts to its last
    case's END marker."""
    times, start, last = {}, {}, {}

    def close(suite, t):
        if suite in start and t is not None:
            times[suite] = round(times.get(suite, 0) + t - start.pop(suite), 3)

    for line in log_text.splitlines():
        if splats.BOOT.match(line):
            for suite in list(start):
                close(suite, last.get(suite))
            last = {}
            continue
        m = STAMP.match(line)
        if not m:
            continue
        t, rest = float(m.group(1)), m.group(2)
        m = SUITE_MARK.match(rest)
        if m:
            if m.group(3):
                close(m.group(1), t)
            else:
                start[m.group(1)], last[m.group(1)] = t, None
            continue
        m = END_MARK.match(rest)
        if m:
            last[m.group(1)] = t
    for suite in list(start):
        close(suite, last.get(suite))
    return times


def merge(boots, notrun, c_resumable=True):
    """{suite: {case: result}} over every boot: a case's result is from the boot it
    ran in; the case a fault or hang hit is "crash" with the fault's line. With a
    C harness that cannot resume, the C cases after a fault are "not run"."""
    results = {s: {} for s in guest.SUITES}
    for b in boots:
        for name, r in guest.kselftest_results(b.results).items():
            # a harness without -r runs every case; only those planned count
            if b.valid("kselftest", name) and name in b.todo.get("kselftest", []):
                results["kselftest"][name] = {**r, "boot": b.number}
        _, cases, _ = guest.dmirror_results(b.results)
        for name, r in cases.items():
            if b.valid("dmirror", name):
                results["dmirror"][name] = {**r, "boot": b.number}
        # a fault in the extras (an explore scenario) is no suite case's: the extras report it
        if b.faulted and b.faulted[0] in results and b.faulted[1] in b.todo.get(b.faulted[0], []):
            suite, name = b.faulted
            kind = "hung in the kernel" if b.ended == "hang" else "kernel fault"
            # a case that printed its verdict before the fault keeps it; the fault is its finding too
            prior = results[suite].get(name)
            results[suite][name] = {"verdict": "crash", "detail": f"{kind} (boot {b.number}): {b.why}",
                                    "secs": 0, "boot": b.number,
                                    "before": prior["verdict"] if prior else None}
    for suite in guest.SUITES:
        planned = list(boots[0].todo.get(suite, [])) if boots else []
        for name in planned:
            if name not in results[suite] and suite == "kselftest" and not c_resumable:
                results[suite][name] = {"verdict": "not run", "secs": 0,
                                        "detail": "after a kernel fault: this tree's harness has no -r to "
                                                  "start at the next case"}
            elif name not in results[suite]:
                last = boots[-1]
                results[suite][name] = {"verdict": "error", "secs": 0, "boot": last.number,
                                        "detail": f"no result (boot {last.number} ended: {last.ended}"
                                                  f"{': ' + last.why if last.why else ''})"}
        for name, why in notrun.get(suite, {}).items():
            results[suite][name] = {"verdict": "not run", "detail": why, "secs": 0}
    return results


# ------------------------------------------------------------------ booting

def run_boots(out, guest_settings, info, dmirror_path, todo, config, hang_after, timeout_min,
              c_resumable=True, extra=()):
    """Boot until the plan is done; returns the boots. Each boot gets its own folder
    out/guest/boot-N (console.log, qemu.log, and the share: todo/, results/)."""
    gdir = os.path.join(out, "guest")
    shutil.rmtree(gdir, ignore_errors=True)
    os.makedirs(gdir)
    initrd = os.path.join(out, "initramfs.cpio")
    initramfs.make_initramfs(initrd, info, dmirror_path, config, extra)
    say(f"guest: initramfs {os.path.getsize(initrd) >> 20} MiB")
    boots, number = [], 0
    # every boot but the last ends in a case (which is then done), so this many always suffice
    most = sum(len(v) for v in todo.values()) + 2
    while todo is not None:
        number += 1
        if number > most:
            raise LabError(f"{most} boots did not finish the plan; read {gdir}/boot-*/console.log")
        bdir = os.path.join(gdir, f"boot-{number}")
        os.makedirs(bdir)
        guest.prepare_share(bdir, todo)
        console = os.path.join(bdir, "console.log")
        open(console, "w").close()
        cmd, append = qemu.qemu_cmd(guest_settings, info, initrd, ["-serial", f"file:{console}"], share=bdir)
        with open(os.path.join(bdir, "qemu-cmdline.txt"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        n = sum(len(v) for v in todo.values())
        say(f"guest: boot {number}: {n} cases; qemu {'KVM' if guest_settings.kvm else 'TCG'}, "
            f"{guest_settings.cpus} CPUs, {guest_settings.mem} MiB; cmdline: {append}")
        wall, watcher, how = qemu.boot(cmd, console, os.path.join(bdir, "qemu.log"), timeout_min, hang_after)
        ended, faulted, why = outcome(watcher, how)
        b = Boot(number, bdir, todo, ended, faulted, why, round(wall, 1), list(watcher.after_fault))
        boots.append(b)
        if ended != "done":
            say(f"guest: boot {number} ended: {ended}{' in ' + ' '.join(faulted) if faulted else ''}"
                f"{': ' + why if why else ''}")
        if b.after_fault:
            say(f"guest: {len(b.after_fault)} case(s) began after the fault; they run again")
        todo = next_todo(b, finished(b), c_resumable)
        if todo is not None:
            say(f"guest: a fresh boot goes on with the {sum(len(v) for v in todo.values())} cases left")
    return boots
