"""kselftest TAP: the verdict of one case from the kernel harness's output, and
the report's SUITE.tap, every case's lines reassembled into one stream."""

import re

RESULT_LINE = re.compile(r"^(not ok|ok) \d+ (\S+)(.*)$")
# the per-case run's own framing, which the reassembled stream replaces
FRAMING = re.compile(r"^(TAP version|1\.\.\d+$|# (Starting|PASSED|FAILED|Totals))")


# before 6.2, ksft_test_result_skip() printed no name: "ok 3 # SKIP reason"
NAMELESS_SKIP = re.compile(r"^ok \d+ (# SKIP.*)$")


def result_line(line, name):
    """(ok or not ok, the rest after the name) when line is name's result line (in a
    case's own output, a result line without a name is that case's)."""
    m = RESULT_LINE.match(line)
    if m and m.group(2) == name:
        return m.group(1), m.group(3)
    m = NAMELESS_SKIP.match(line)
    if m:
        return "ok", " " + m.group(1)
    return None


def parse_case_output(text, name):
    """(verdict, detail) from one case's TAP output."""
    for line in text.splitlines():
        r = result_line(line, name)
        if r:
            result, rest = r
            if result == "not ok":
                return "fail", rest.strip(" #")
            if re.search(r"#\s*SKIP", rest, re.I):
                return "skip", re.sub(r"^\s*#\s*SKIP\s*", "", rest, flags=re.I)
            if re.search(r"#\s*XFAIL", rest, re.I):
                return "xfail", rest
            return "pass", ""
    return "error", "no TAP result line"


def test_line(number, name, verdict, reason=None):
    """ksft_test_result_code()'s line for a verdict."""
    if verdict == "pass":
        return f"ok {number} {name}"
    if verdict == "skip":
        return f"ok {number} {name} # SKIP {reason or 'unknown'}"
    return f"not ok {number} {name}"


def reassemble(order, results, body_of, header=()):
    """One TAP stream of every case in order, numbered 1..N: body_of(name) gives a
    case's own TAP lines; its result line is renumbered, its framing dropped,
    anything else kept as a diagnostic. header: comment lines after the version
    line (dmirror's own TAP puts its backend there)."""
    lines = ["TAP version 13", *header, f"1..{len(order)}"]
    totals = {}
    for i, name in enumerate(order, 1):
        r = results[name]
        totals[r["verdict"]] = totals.get(r["verdict"], 0) + 1
        if r["verdict"] == "not run":
            lines.append(f"ok {i} {name} # SKIP not run ({r['detail']})")
            continue
        seen = False
        for line in body_of(name):
            res = result_line(line, name)
            if res:
                lines.append(f"{res[0]} {i} {name}{res[1]}")
                seen = True
            elif FRAMING.match(line):
                continue
            else:
                lines.append(line if line.startswith("#") else "# " + line)
        if not seen:
            lines.append(f"not ok {i} {name} # {r['detail']}")
    lines.append("# Totals: " + " ".join(f"{k.replace(' ', '_')}:{v}" for k, v in sorted(totals.items())))
    return "\n".join(lines) + "\n"


def write_tap(path, order, results, body_of, header=()):
    with open(path, "w") as f:
        f.write(reassemble(order, results, body_of, header))
