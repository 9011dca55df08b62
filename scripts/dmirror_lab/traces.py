"""dmirror's command traces read command by command, to say which commands'
results changed between two kernels. The line format is documented at the top
of Sources/Harness/CommandTrace.swift:

    <pid> <COMMAND> unit=<N> npages=<N> addr=aligned|unaligned <outcome>
    <pid> HMM_DMIRROR_FLAGS unit=<N> flags=0x<hex> addr=... <outcome>
    <pid> open unit=<N> ok|errno=<NAME>
    <pid> close unit=<N> ok|errno=<NAME>
    end pass|fail|assert|skip

where <outcome> is `errno=<NAME>` or `ok cpages=<N> faults=<N>` followed by
`data=<digest>:<hex>` (fnv1a64w in v2 traces, fnv1a64 in v1) or `snapshot=<run-length hex>`
(which has spaces)."""

import os

from .common import read_text

# what a command's result is made of; the rest of a line says which command it is
RESULT_FIELDS = ("errno", "cpages", "faults", "snapshot", "data")


def parse_line(line):
    """A trace line as {"pid", "command", "args", "errno", "cpages", "faults",
    "snapshot", "data"} (a missing field is None), {"end": word}, or None for a
    comment or an empty line."""
    line = line.rstrip("\n")
    if not line.strip() or line.startswith("#"):
        return None
    if line.startswith("end "):
        return {"end": line[4:].strip()}
    snapshot = None
    if " snapshot=" in line:
        line, snapshot = line.split(" snapshot=", 1)
    words = line.split()
    cmd = {"pid": words[0], "command": words[1] if len(words) > 1 else "?", "args": [],
           **dict.fromkeys(RESULT_FIELDS)}
    cmd["snapshot"] = snapshot
    for w in words[2:]:
        key, eq, val = w.partition("=")
        if eq and key in RESULT_FIELDS:
            cmd[key] = val
        elif w != "ok":
            cmd["args"].append(w)
    return cmd


def read_trace(path):
    """(commands, end word or None) of one trace file."""
    commands, end = [], None
    for line in read_text(path, "").splitlines():
        c = parse_line(line)
        if c is None:
            continue
        if "end" in c:
            end = c["end"]
        else:
            commands.append(c)
    return commands, end


def identity(c):
    return f"{c['pid']} {c['command']} {' '.join(c['args'])}".strip()


def outcome_text(c):
    """A command's result as a short text: `errno=EINVAL` or `cpages=4 faults=1 ...`."""
    if c["errno"]:
        return f"errno={c['errno']}"
    return " ".join(f"{k}={c[k]}" for k in RESULT_FIELDS[1:] if c[k] is not None) or "ok"


def compare_case(a, b):
    """The commands of one case whose result differs between two traces, each
    {"index": 1-based command index, "command": identity, "fields": [changed
    result fields], "before": outcome, "after": outcome}; a command sequence that
    diverges gives one entry with fields ["command"] and stops there."""
    (ca, enda), (cb, endb) = a, b
    out = []
    for i, (x, y) in enumerate(zip(ca, cb, strict=False), 1):
        if identity(x) != identity(y):
            out.append({"index": i, "command": identity(x), "fields": ["command"],
                        "before": identity(x), "after": identity(y)})
            return out
        fields = [f for f in RESULT_FIELDS if x[f] != y[f]]
        if fields:
            out.append({"index": i, "command": identity(x), "fields": fields,
                        "before": outcome_text(x), "after": outcome_text(y)})
    if len(ca) != len(cb):
        i = min(len(ca), len(cb)) + 1
        longer = ca if len(ca) > len(cb) else cb
        out.append({"index": i, "command": identity(longer[i - 1]), "fields": ["command"],
                    "before": identity(ca[i - 1]) if len(ca) >= i else "(trace ends)",
                    "after": identity(cb[i - 1]) if len(cb) >= i else "(trace ends)"})
    if enda != endb:
        out.append({"index": len(ca) + 1, "command": "end", "fields": ["end"],
                    "before": enda or "-", "after": endb or "-"})
    return out


def compare_dirs(a, b, skip=()):
    """({case: [differences]} for the cases traced on both sides, [cases only in a],
    [cases only in b]); skip: cases not compared (nondeterministic by design)."""
    def names(d):
        return {f[:-6] for f in os.listdir(d) if f.endswith(".trace")} if os.path.isdir(d) else set()
    na, nb = names(a) - set(skip), names(b) - set(skip)
    changed = {}
    for n in sorted(na & nb):
        diff = compare_case(read_trace(os.path.join(a, n + ".trace")),
                            read_trace(os.path.join(b, n + ".trace")))
        if diff:
            changed[n] = diff
    return changed, sorted(na - nb), sorted(nb - na)
