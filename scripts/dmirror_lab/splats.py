"""Kernel splats (WARNING, BUG, lockdep, KASAN, ...) in the guest's log: where
each starts and ends, the case it belongs to (the BEGIN/END markers /init
writes to /dev/kmsg), and whether scripts/known-splats.tsv expects it."""

import fnmatch
import re

from .common import KNOWN_SPLATS, LabError

# what mm-ci's tripwire (WARNING:|BUG|Oops|UBSAN:|rcu:.*stall|INFO: task .* blocked|
# watchdog:.*LOCKUP) catches, as the first line of a report
TITLE = re.compile(r"^(WARNING:|BUG:|kernel BUG at|Oops:|general protection fault|"
                   r"Kernel panic|UBSAN:|INFO: task .* blocked|.*rcu: INFO: .*detected stall|"
                   r"watchdog: .*(LOCKUP|lockup)|"
                   r"INFO: trying to register non-static key|Bad page state|"
                   r"======+\s*$)")
# a report after which the kernel is not fit to run more cases: the task died in the
# kernel (x86's die() prints "Oops:" since 6.x, and "invalid opcode:" or
# "general protection fault:" with a "[#N]" counter before), or it panicked
FATAL = re.compile(r"^(Oops: |kernel BUG at |BUG: unable to handle |BUG: kernel NULL pointer|"
                   r"general protection fault|invalid opcode: |Kernel panic - not syncing)")
MARKER = re.compile(r"dmirror-lab: (BEGIN|END) (\S+) (\S+)")
# the lab's line between the logs of two boots in kernel.log
BOOT = re.compile(r"^===== dmirror-lab: boot (\d+)")


def boot_line(n, why):
    return f"===== dmirror-lab: boot {n} ({why}) ====="


def strip_ts(line):
    return re.sub(r"^\[\s*\d+\.\d+\]\s?", "", line.rstrip("\r\n"))


def normalise(title):
    """A splat's first line without what changes from run to run (offsets, CPU, PID)."""
    t = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", title)
    t = re.sub(r"CPU: ?#?\d+ PID: \d+", "", t)
    t = re.sub(r",? ?CPU#\d+: \S+", "", t)
    t = re.sub(r"\s+", " ", t)
    return t.strip()


def find_splats(lines):
    """Each splat: dict(title, message, text, test, line, after_end, fatal, boot).
    Attributed to the case between the nearest BEGIN/END markers; a splat after
    a case's END and before the next BEGIN belongs to that case too (after_end:
    what its exit left behind, e.g. device pages evicted when its files closed),
    not to whatever the lab does next. Before the first case of a boot: "boot"."""
    splats = []
    current, after_end, boot = "boot", False, 1
    i = 0
    while i < len(lines):
        line = strip_ts(lines[i])
        m = MARKER.search(line)
        if m:
            current, after_end = f"{m.group(2)}:{m.group(3)}", m.group(1) == "END"
            i += 1
            continue
        m = BOOT.match(line)
        if m:
            current, after_end, boot = "boot", False, int(m.group(1))
            i += 1
            continue
        if TITLE.match(line) and "dmirror-lab" not in line:
            start = i
            title = line
            if re.match(r"^=+\s*$", line):       # lockdep / KASAN banner: title is the next line
                if i + 1 < len(lines) and TITLE.match(strip_ts(lines[i + 1])):
                    title = strip_ts(lines[i + 1])
                    i += 1
                else:
                    i += 1
                    continue
            # a WARN's message is the line between "cut here" and the WARNING line
            message = ""
            if start > 1 and "cut here" in strip_ts(lines[start - 2]):
                message = strip_ts(lines[start - 1])
            j = i + 1
            while j < len(lines) and j < i + 120:
                body = strip_ts(lines[j])
                if "end trace" in body or "dmirror-lab:" in body:
                    break
                if TITLE.match(body) and not body.startswith("=") and not body.startswith("Oops:"):
                    break
                j += 1
            text = "\n".join(strip_ts(x) for x in lines[max(0, start - 2):j + 1])
            # its first lines as a person reads them: from "cut here" for a WARN, else the title
            head_from = start - 2 if message else (i if title != line else start)
            splats.append({"title": normalise(title), "message": message.strip(), "text": text,
                           "test": current, "line": start + 1, "after_end": after_end,
                           "fatal": bool(FATAL.match(title)), "boot": boot,
                           "head": [strip_ts(x) for x in lines[max(0, head_from):j + 1][:6]]})
            i = j if j > i else i + 1
            continue
        i += 1
    return splats


def parse_known_splats(text, where=KNOWN_SPLATS):
    """(regex, case glob, why) rows of a known-splats.tsv."""
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            raise LabError(f"{where}: need 3 tab-separated columns: {line.strip()!r}")
        rows.append((re.compile(cols[0]), cols[1], cols[2]))
    return rows


def load_known_splats(path=KNOWN_SPLATS):
    try:
        with open(path) as f:
            return parse_known_splats(f.read(), path)
    except FileNotFoundError:
        return []


def classify_splats(splats, known, invalid=()):
    """Sets each splat's "known" to the why of the first row it matches, or None.
    invalid: (boot, "suite:case") of cases that ran after a kernel fault in that boot;
    their splats are kept but marked "after_fault" (the kernel had already failed)."""
    for s in splats:
        s["known"] = None
        s["after_fault"] = (s.get("boot", 1), s["test"]) in invalid
        hay = s["title"] + " | " + s["message"]
        test_name = s["test"].split(":", 1)[-1]
        for rx, where, why in known:
            if rx.search(hay) and (fnmatch.fnmatch(test_name, where) or fnmatch.fnmatch(s["test"], where)):
                s["known"] = why
                break
    return splats


def by_test(splats):
    """{"suite:case": [splats]}."""
    out = {}
    for s in splats:
        out.setdefault(s["test"], []).append(s)
    return out


def splat_cell(grouped, suite, name):
    """verdicts.tsv's splat column of one case in one suite: each distinct splat,
    known or NEW, with its count; "-" when there is none."""
    ss = grouped.get(f"{suite}:{name}", [])
    if not ss:
        return "-"
    groups = {}
    for s in ss:
        state = "known" if s["known"] else ("after fault" if s.get("after_fault") else "NEW")
        k = (s["title"] + (": " + s["message"] if s["message"] else ""), state)
        groups[k] = groups.get(k, 0) + 1
    return "; ".join(f"{t[:90]} [{state}] x{n}" for (t, state), n in groups.items())


def splats_txt(splats):
    """splats.txt: every splat with its place, case and whether it is known."""
    def state(s):
        if s["known"]:
            return "known: " + s["known"]
        if s.get("judged"):
            return "judged against the simulator's exploration of the scenario (the explore report)"
        if s.get("after_fault"):
            return "after an earlier kernel fault in this boot (the case ran again in a fresh boot)"
        return "NEW"
    return "".join(f"### kernel.log line {s['line']}  test={s['test']}"
                   f"{' (after the case ended)' if s.get('after_end') else ''}  {state(s)}\n"
                   f"{s['text']}\n\n" for s in splats)


def summary_lines(splats):
    """One console line per distinct (title, message, case, known), with its count."""
    seen = {}
    for s in splats:
        word = ("known" if s["known"] else "explore" if s.get("judged") else
                "after" if s.get("after_fault") else "NEW  ")
        k = (s["title"], s["message"], s["test"], word)
        seen[k] = seen.get(k, 0) + 1
    return [f"  {word} x{n:<3} {test}: {t}{' -- ' + m if m else ''}"
            for (t, m, test, word), n in seen.items()]
