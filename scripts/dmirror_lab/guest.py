"""The guest protocol, as scripts/lab-guest-init.sh speaks it: /lab/config and
the share's todo lists in; out, in the share's results/ (a virtio-9p mount of a
host directory, written as the cases finish, so a panic loses nothing that
finished): kselftest.rc and kselftest/NAME.out per C case, dmirror.jsonl (one
JSON line per case as it ends), dmirror.rc, dmirror-traces/, env.txt, the
module's load and unload records and, when the boot ends normally, dmesg.txt."""

import json
import os
import re

from . import tap
from .common import read_text

SUITES = ("kselftest", "dmirror")


def config_text(mode, spm0, spm1, test_hmm, test_timeout, trace, thp, c_whole=False):
    """/lab/config, which /init sources. c_whole: the C suite's harness has no -r (6.1),
    so hmm-tests runs once and /init cuts its output into cases."""
    return (f"LAB_MODE={mode}\nLAB_SPM0={spm0:#x}\nLAB_SPM1={spm1:#x}\nLAB_TEST_HMM={test_hmm}\n"
            f"LAB_TEST_TIMEOUT={test_timeout}\nLAB_TRACE={1 if trace else 0}\nLAB_THP={thp}\n"
            f"LAB_C_WHOLE={1 if c_whole else 0}\n")


def prepare_share(share, todo):
    """The host side of one boot's share: todo/<suite> (the cases to run, in order)
    and an empty results/."""
    os.makedirs(os.path.join(share, "todo"), exist_ok=True)
    os.makedirs(os.path.join(share, "results"), exist_ok=True)
    for suite in SUITES:
        with open(os.path.join(share, "todo", suite), "w") as f:
            f.write("".join(n + "\n" for n in todo.get(suite, [])))


# ------------------------------------------------------------ the case lists

def kselftest_names(listing):
    """fixture.variant.test names in run order from `hmm-tests -l` (a table of
    fixture, variant and test columns of width 20, 25 and the rest; a fixture's
    variants and tests are crossed)."""
    names = []
    fixture, variants, tests = None, [], []
    in_table = False

    def flush():
        if fixture:
            for v in variants or [None]:
                names.extend(f"{fixture}.{v}.{t}" if v else f"{fixture}.{t}" for t in tests)

    for line in listing.splitlines():
        if line.startswith("# FIXTURE"):
            in_table = True
            continue
        if not in_table or line.startswith("#") or line.startswith("["):
            continue
        if line.startswith("----"):
            flush()
            fixture, variants, tests = None, [], []
            continue
        f, v, t = line[:20].strip(), line[21:46].strip(), line[47:].strip()
        if f:
            flush()
            fixture, variants, tests = f, [], []
        if v:
            variants.append(v)
        if t:
            tests.append(t)
    flush()
    return names


DECL = re.compile(r"^(FIXTURE|FIXTURE_VARIANT_ADD|TEST_F|TEST_F_TIMEOUT)\(\s*(\w+)\s*(?:,\s*(\w+))?", re.M)


def kselftest_names_from_source(text):
    """fixture.variant.test names in run order from hmm-tests.c itself, for a harness
    without -l: fixtures in the order they are declared, each one's variants crossed
    with its tests, both in declaration order (the harness's constructors append)."""
    fixtures, variants, tests = [], {}, {}
    for kind, a, b in DECL.findall(text):
        if kind == "FIXTURE":
            fixtures.append(a)
        elif kind == "FIXTURE_VARIANT_ADD":
            variants.setdefault(a, []).append(b)
        else:
            tests.setdefault(a, []).append(b)
    return [f"{f}.{v}.{t}" if v else f"{f}.{t}"
            for f in fixtures for v in variants.get(f, [None]) for t in tests.get(f, [])]


# ------------------------------------------------------------ results of one boot

def read_rc(path):
    """({case: {rc, t0, t1}}, run order) from a kselftest.rc (`name rc t0 t1` lines)."""
    rows, order = {}, []
    for line in read_text(path, "").splitlines():
        parts = line.split()
        if len(parts) >= 4:
            rows[parts[0]] = {"rc": parts[1], "t0": float(parts[2]), "t1": float(parts[3])}
            order.append(parts[0])
    return rows, order


def kselftest_results(res):
    """{case: {verdict, detail, secs, rc}} of the C cases that finished in one boot."""
    rcs, order = read_rc(os.path.join(res, "kselftest.rc"))
    out = {}
    for name in order:
        r = rcs[name]
        text = read_text(os.path.join(res, "kselftest", f"{name}.out"), "")
        v, d = tap.parse_case_output(text, name) if text else ("error", "no output")
        if v == "error" and r["rc"] == "137":
            d = "killed by the lab's per-case timeout"
        if v == "error" and r["rc"] not in ("0", "1", "4"):
            d += f" (exit {r['rc']})"
        out[name] = {"verdict": v, "detail": d, "secs": round(r["t1"] - r["t0"], 3), "rc": r["rc"]}
    return out


def parse_jsonl(text):
    """dmirror's `--format jsonl`: (backend, plan, {case name: case}, totals or
    None). A line cut off by a crash, or anything not JSON, is skipped."""
    backend, plan, cases, totals = None, [], {}, None
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if isinstance(doc.get("backend"), dict):
            backend, plan = doc["backend"], doc.get("plan") or []
        elif isinstance(doc.get("case"), dict) and isinstance(doc["case"].get("name"), str):
            cases[doc["case"]["name"]] = doc["case"]
        elif isinstance(doc.get("totals"), dict):
            totals = doc["totals"]
    return backend, plan, cases, totals


def dmirror_case_result(case):
    """{verdict, detail, secs, note, output} of one case of dmirror's JSON lines."""
    verdict = case.get("verdict")
    if verdict not in ("pass", "fail", "skip"):
        return {"verdict": "error", "detail": f"unknown verdict {verdict!r}", "secs": 0}
    secs = case.get("duration")
    return {"verdict": verdict, "detail": "" if verdict == "pass" else (case.get("reason") or ""),
            "secs": round(secs, 3) if isinstance(secs, (int, float)) else 0,
            "note": case.get("note"), "output": case.get("output") or ""}


def dmirror_results(res):
    """(backend, {case: result}, the process's (rc, t0, t1) or None) of one boot."""
    backend, _, cases, _ = parse_jsonl(read_text(os.path.join(res, "dmirror.jsonl"), ""))
    words = read_text(os.path.join(res, "dmirror.rc"), "").split()
    run = (words[0], float(words[1]), float(words[2])) if len(words) >= 3 else None
    return backend, {n: dmirror_case_result(c) for n, c in cases.items()}, run


def dmirror_case_lines(name, result, number):
    """One dmirror case as kselftest TAP lines, as dmirror's own TAP prints it:
    RUN, the case's output, the kernel-finding note, OK/FAIL and the result line."""
    lines = [f"#  RUN           {name} ..."]
    lines += [x if x.startswith("#") else "# " + x for x in (result.get("output") or "").splitlines()]
    if result.get("note"):
        lines.append(f"# {name}: {result['note']}")
    word = "FAIL" if result["verdict"] == "fail" else "OK"
    lines.append(f"#          {' ' * (4 - len(word))}{word}  {name}")
    lines.append(tap.test_line(number, name, result["verdict"], result.get("detail")))
    return lines


def kernel_release(res):
    """`uname -r` of the guest, from env.txt's `uname: ` line (uname -a), or None."""
    for line in read_text(os.path.join(res, "env.txt"), "").splitlines():
        if line.startswith("uname: "):
            words = line.split()
            if len(words) >= 4:
                return words[3]
    return None


def guest_thp(res):
    """The THP mode the guest ran with ("madvise" from "always [madvise] never"), or None."""
    m = re.search(r"^thp: .*\[(\w+)\]", read_text(os.path.join(res, "env.txt"), ""), re.M)
    return m.group(1) if m else None
