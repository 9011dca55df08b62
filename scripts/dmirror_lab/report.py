"""The report of a run: the verdict table (verdicts.tsv), the reassembled TAP
streams, splats.txt, timings.json, and the checks that decide the exit status."""

import json
import os
import shutil

from . import dmirror, guest, splats, tap
from .common import read_text, say

REAL_VERDICTS = ("pass", "fail", "skip", "error", "xfail")
FAILED = ("fail", "error")


def verdict_table(corder, cres, dorder, dres, dmirror_ran, traces, cell):
    """Every case (the C suite's order, then dmirror's extra cases) as a row
    (case, C, dmirror, trace, C splats, dmirror splats), a missing verdict as "-";
    cell(suite, name) gives a splat column. Returns (rows, disagreements,
    kernel findings (failed in both), failed in C where dmirror has no verdict)."""
    names = list(corder) + [n for n in dorder if n not in cres]
    rows, disagree, findings, c_only_fail = [], [], [], []
    for n in names:
        c = cres.get(n, {}).get("verdict", "-")
        d = dres.get(n, {}).get("verdict", "-") if dmirror_ran else "-"
        rows.append((n, c, d, traces.get(n, "-"), cell("kselftest", n), cell("dmirror", n)))
        if c in REAL_VERDICTS and d in REAL_VERDICTS and c != d:
            disagree.append(n)
        elif c in FAILED and d in FAILED:
            findings.append(n)
        elif c in FAILED and d == "-":
            c_only_fail.append(n)
    return rows, disagree, findings, c_only_fail


def verdicts_tsv(rows):
    return ("case\tkselftest\tdmirror\ttrace_kernel_vs_sim\tkselftest_splats\tdmirror_splats\n"
            + "".join("\t".join(r) + "\n" for r in rows))


def table_lines(rows, disagree):
    """The console's verdict table."""
    w = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'case':{w}}  {'C':7}  {'dmirror':7}  {'trace':7}  splats"]
    for n, c, d, tr, cs, ds in rows:
        sp = []
        if cs != "-":
            sp.append("C: " + cs)
        if ds != "-":
            sp.append("dmirror: " + ds)
        mark = "  <-- DISAGREE" if n in disagree else ""
        if tr == "differs":
            mark += "  <-- SIMULATOR DIFFERS"
        lines.append(f"{n:{w}}  {c:7}  {d:7}  {tr:7}  {' | '.join(sp) if sp else '-'}{mark}")
    return lines


def count_line(label, results):
    def count(v):
        return sum(1 for r in results.values() if r["verdict"] == v)
    return (f"{label}: {len(results)} cases: pass {count('pass')}, fail {count('fail')}, "
            f"skip {count('skip')}, error {count('error')}, not run {count('not run')}")


def first_few(names, n=6):
    return f"{', '.join(names[:n])}{' ...' if len(names) > n else ''}"


def coherent_skipped(corder, cres):
    """C cases of the device-coherent variant that skipped for want of coherent devices."""
    coh = [n for n in corder if ".hmm_device_coherent." in n or ".hmm2_device_coherent." in n]
    return [n for n in coh if cres[n]["verdict"] == "skip" and "COHERENT" in cres[n]["detail"]]


def module_checks(res):
    """(unload console line, problems) from the guest's insmod/rmmod records."""
    problems = []
    spm_ok = os.path.join(res, "spm.ok")
    if os.path.exists(spm_ok) and read_text(spm_ok).strip() != "1":
        problems.append("the memory for the coherent devices is not reserved RAM in the guest "
                        "(see the spm: lines above); test_hmm was loaded without spm addresses")
    if read_text(os.path.join(res, "insmod.rc")).strip() != "0":
        problems.append("insmod test_hmm failed: " + read_text(os.path.join(res, "insmod.txt")).strip())
    rm = read_text(os.path.join(res, "rmmod.rc"), "?").strip()
    tries = read_text(os.path.join(res, "rmmod.tries"), "1").strip()
    rmtxt = read_text(os.path.join(res, "rmmod.txt"), "").strip()
    line = (f"unload: rmmod test_hmm {'ok' if rm == '0' else 'FAILED (exit ' + rm + ')'}"
            f"{'' if tries == '1' else f' after {tries} tries'}")
    if rm != "0":
        last = [x for x in rmtxt.splitlines() if x.startswith("rmmod")][-1:] or ["?"]
        refs = [x for x in rmtxt.splitlines() if x.startswith("try ")][-1:] or ["?"]
        problems.append(f"rmmod test_hmm failed {tries} times ({last[0]}; {refs[0]}); "
                        f"see {res}/rmmod.txt")
    return line, problems


def trace_tally_line(traces, out):
    tally = {}
    for v in traces.values():
        tally[v] = tally.get(v, 0) + 1
    return ("traces (kernel vs simulator, command by command): " +
            ", ".join(f"{k} {v}" for k, v in sorted(tally.items())) + f" (details in {out}/traces.txt)")


def report(out, info, timing, dmirror_status, dmirror_ok, args):
    """Writes the report files into out, prints the table and the checks;
    returns the exit status (0 or 1)."""
    res = os.path.join(out, "guest", "results")
    problems = []
    notes = read_text(os.path.join(res, "notes.txt"), "")
    # kernel log: the guest's dmesg (complete), else what the console saw
    dmesg = os.path.join(res, "dmesg.txt")
    have_dmesg = os.path.exists(dmesg) and os.path.getsize(dmesg) > 0
    src_log = dmesg if have_dmesg else os.path.join(out, "console.log")
    shutil.copy(src_log, os.path.join(out, "kernel.log"))
    klines = read_text(os.path.join(out, "kernel.log")).splitlines()

    cres, corder = guest.suite_results(res, "kselftest")
    dres, dorder = guest.suite_results(res, "dmirror")
    tap.write_tap(os.path.join(out, "kselftest.tap"), corder, cres,
                  lambda n: guest.case_body(res, "kselftest", n))
    dmirror_ran = os.path.exists(os.path.join(res, "dmirror.rc"))
    if dmirror_ran:
        tap.write_tap(os.path.join(out, "dmirror.tap"), dorder, dres,
                      lambda n: guest.case_body(res, "dmirror", n))
    else:
        with open(os.path.join(out, "dmirror.tap"), "w") as f:
            f.write(f"TAP version 13\n1..0 # SKIP {dmirror_status}\n")
    if os.path.exists(os.path.join(res, "dmirror.list.rc")) and not dmirror_ran:
        dmirror_ok = False
        problems.append("dmirror does not run in the guest: " +
                        read_text(os.path.join(res, "dmirror.list.err")).strip()[:300])

    found = splats.classify_splats(splats.find_splats(klines), splats.load_known_splats())
    with open(os.path.join(out, "splats.txt"), "w") as f:
        f.write(splats.splats_txt(found))
    grouped = splats.by_test(found)

    trace_verdicts, trace_details = dmirror.read_trace_comparison(out)
    rows, disagree, findings, c_only_fail = verdict_table(
        corder, cres, dorder, dres, dmirror_ran, trace_verdicts,
        lambda suite, n: splats.splat_cell(grouped, suite, n))
    with open(os.path.join(out, "verdicts.tsv"), "w") as f:
        f.write(verdicts_tsv(rows))

    # ---- print
    say("")
    say(f"kernel: {info['release']}  ({'KASAN, ' if info.get('kasan') else ''}PROVE_LOCKING, DEBUG_VM; "
        f"THP={args.thp}; {'KVM' if args.kvm else 'TCG'})")
    for line in notes.splitlines():
        say(f"guest: {line}")
    say(dmirror_status)
    say("")
    for line in table_lines(rows, disagree):
        say(line)
    say("")
    for label, r_ in (("kselftest", cres), ("dmirror", dres if dmirror_ran else {})):
        if r_:
            say(count_line(label, r_))
    if dmirror_ran:
        missing = [n for n in corder if n not in dres]
        extra = [n for n in dorder if n not in cres]
        if missing:
            say(f"dmirror lacks {len(missing)} C case(s): {first_few(missing)}")
        if extra:
            say(f"dmirror has {len(extra)} case(s) the C suite lacks: {first_few(extra)}")

    # ---- checks
    if len(corder) == 0:
        problems.append("the C suite listed no cases (hmm-tests -l failed?)")
    coh_skipped = coherent_skipped(corder, cres)
    if coh_skipped:
        problems.append(f"the device-coherent variant was skipped ({len(coh_skipped)} cases): "
                        "test_hmm has no coherent devices; see notes above and kernel.log")
    unload, module_problems = module_checks(res)
    problems += module_problems
    say(unload)
    new = [s for s in found if not s["known"]]
    say(f"kernel log: {len(found)} splat(s), {len(found) - len(new)} known, {len(new)} new "
        f"(details in {out}/splats.txt)")
    for line in splats.summary_lines(found):
        say(line)
    if new:
        problems.append(f"{len(new)} kernel splat(s) not on scripts/known-splats.tsv (see splats.txt)")
    for n in disagree:
        problems.append(f"disagreement on {n}: C {cres[n]['verdict']} {cres[n]['detail']!s} vs dmirror "
                        f"{dres[n]['verdict']} {dres[n]['detail']!s}".rstrip())
    if trace_verdicts:
        say(trace_tally_line(trace_verdicts, out))
    for n, v in trace_verdicts.items():
        if v == "differs":
            problems.append(f"the simulator answers {n} differently from the kernel: " +
                            " / ".join(trace_details.get(n, [])[:2]))
    if findings:
        say("kernel findings (failed in both suites): " + ", ".join(findings))
    if c_only_fail:
        say("kernel findings (C suite failed; dmirror has no verdict): " + ", ".join(c_only_fail))
    if not dmirror_ok:
        problems.append(dmirror_status)
    t = dict(timing)
    t["kernel_build_s"] = info.get("build_seconds") if not info.get("cached") else 0
    t["kernel_cached"] = bool(info.get("cached"))
    with open(os.path.join(out, "timings.json"), "w") as f:
        json.dump(t, f, indent=1)
    say("times: " + ", ".join(f"{k}={v}" for k, v in t.items()))
    say(f"files: {out}/kselftest.tap dmirror.tap kernel.log verdicts.tsv splats.txt traces.txt console.log")
    if problems:
        say("")
        for p in problems:
            say(f"lab: FAIL: {p}")
        return 1
    say("lab: OK")
    return 0
