"""Kernel splats (WARNING, BUG, lockdep, KASAN, ...) in the guest's log: where
each starts and ends, the case it belongs to (the BEGIN/END markers /init
writes to /dev/kmsg), and whether scripts/known-splats.tsv expects it."""

import fnmatch
import re

from .common import KNOWN_SPLATS, LabError

TITLE = re.compile(r"^(WARNING:|BUG:|kernel BUG at|Oops:|general protection fault|"
                   r"Kernel panic|UBSAN:|INFO: task .* blocked|.*rcu: INFO: .*detected stall|"
                   r"INFO: trying to register non-static key|Bad page state|"
                   r"======+\s*$)")
MARKER = re.compile(r"dmirror-lab: (BEGIN|END) (\S+) (\S+)")


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
    """Each splat: dict(title, message, text, test, line). Attributed to the
    case between the nearest BEGIN/END markers."""
    splats = []
    current = "boot"
    i = 0
    while i < len(lines):
        line = strip_ts(lines[i])
        m = MARKER.search(line)
        if m:
            current = f"{m.group(2)}:{m.group(3)}" if m.group(1) == "BEGIN" else "idle"
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
            splats.append({"title": normalise(title), "message": message.strip(), "text": text,
                           "test": current, "line": start + 1})
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


def classify_splats(splats, known):
    """Sets each splat's "known" to the why of the first row it matches, or None."""
    for s in splats:
        s["known"] = None
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
        k = (s["title"] + (": " + s["message"] if s["message"] else ""), bool(s["known"]))
        groups[k] = groups.get(k, 0) + 1
    return "; ".join(f"{t[:90]}{' [known]' if kn else ' [NEW]'} x{n}" for (t, kn), n in groups.items())


def splats_txt(splats):
    """splats.txt: every splat with its place, case and whether it is known."""
    return "".join(f"### kernel.log line {s['line']}  test={s['test']}  "
                   f"{'known: ' + s['known'] if s['known'] else 'NEW'}\n{s['text']}\n\n" for s in splats)


def summary_lines(splats):
    """One console line per distinct (title, message, case, known), with its count."""
    seen = {}
    for s in splats:
        k = (s["title"], s["message"], s["test"], s["known"])
        seen[k] = seen.get(k, 0) + 1
    return [f"  {'known' if kn else 'NEW  '} x{n:<3} {test}: {t}{' -- ' + m if m else ''}"
            for (t, m, test, kn), n in seen.items()]
