"""The report of one cell's run: the verdict table (verdicts.tsv), the
reassembled TAP streams, kernel.log, splats.txt, findings.txt, summary.json
(what matrix and compare read), and the checks that decide the exit status."""

import json
import os
import re
import shlex

from . import boots as boots_mod
from . import dmirror, guest, splats, tap
from .common import read_text, say

REAL_VERDICTS = ("pass", "fail", "skip", "error", "xfail")
FAILED = ("fail", "error")
VERDICTS = ("pass", "fail", "skip", "error", "crash", "not run")


def verdict_table(corder, cres, dorder, dres, dmirror_ran, traces, cell):
    """Every case (the C suite's order, then dmirror's extra cases) as a row
    (case, C, dmirror, trace, C splats, dmirror splats), a missing verdict as "-";
    cell(suite, name) gives a splat column. Returns (rows, disagreements,
    kernel findings (failed in both), failed in C where dmirror has no verdict).
    A "crash" (the case hit a kernel fault or hang) is a finding, never a
    disagreement: the other suite ran that case on a kernel that had not failed yet."""
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


def counts(results):
    """{verdict: number of cases} over VERDICTS."""
    return {v: sum(1 for r in results.values() if r["verdict"] == v) for v in VERDICTS}


def count_line(label, results):
    c = counts(results)
    return f"{label}: {len(results)} cases: " + ", ".join(f"{v} {c[v]}" for v in VERDICTS)


def first_few(names, n=6):
    return f"{', '.join(names[:n])}{' ...' if len(names) > n else ''}"


def coherent_skipped(corder, cres):
    """C cases of the device-coherent variant that skipped for want of coherent devices."""
    coh = [n for n in corder if ".hmm_device_coherent." in n or ".hmm2_device_coherent." in n]
    return [n for n in coh if cres[n]["verdict"] == "skip" and "COHERENT" in cres[n]["detail"]]


def unload_status(res, test_hmm, last_ended):
    """(word for the matrix, console line, problems) from the last boot's rmmod records.
    The unload that counts is the one after every case ran: the last boot's."""
    if test_hmm == "y":
        return "n/a", "unload: n/a (test_hmm is built in)", []
    rm = read_text(os.path.join(res, "rmmod.rc"), "").strip()
    if not rm:
        why = f"the last boot ended: {last_ended}"
        # after a kernel fault or hang in the last case there is nothing left to unload from
        # (that finding stands on its own); anything else means the lab lost the step
        problems = [] if last_ended in ("fault", "hang") else [f"rmmod test_hmm was not tried ({why})"]
        return "not tried", f"unload: not tried ({why})", problems
    tries = read_text(os.path.join(res, "rmmod.tries"), "1").strip()
    rmtxt = read_text(os.path.join(res, "rmmod.txt"), "").strip()
    if rm == "0":
        return "ok", f"unload: rmmod test_hmm ok{'' if tries == '1' else f' after {tries} tries'}", []
    if rm == "hung":
        detail = [x for x in rmtxt.splitlines() if x.startswith("rmmod still running")][-1:] or ["?"]
        return ("hung", "unload: rmmod test_hmm HUNG",
                [f"rmmod test_hmm hung: {detail[0]}; see {res}/rmmod.txt"])
    last = [x for x in rmtxt.splitlines() if x.startswith("rmmod")][-1:] or ["?"]
    refs = [x for x in rmtxt.splitlines() if x.startswith("try ")][-1:] or ["?"]
    return ("FAILED", f"unload: rmmod test_hmm FAILED (exit {rm}) after {tries} tries",
            [f"rmmod test_hmm failed {tries} times ({last[0]}; {refs[0]}); see {res}/rmmod.txt"])


def module_problems(res, test_hmm, coherent, spm=None):
    """Problems with loading test_hmm: the reserved RAM, insmod, and for a built-in
    test_hmm the spm addresses it took from the command line (spm: the two expected)."""
    problems = []
    if test_hmm == "y" and coherent and spm:
        got = read_text(os.path.join(res, "builtin-spm.txt"), "").split()
        try:
            values = tuple(int(x, 0) for x in got)
        except ValueError:
            values = ()
        if values != tuple(spm):
            problems.append(f"the built-in test_hmm has spm_addr_dev0/1 {' '.join(got) or 'unset'}, "
                            f"not {spm[0]:#x} {spm[1]:#x} from the command line")
    spm_ok = os.path.join(res, "spm.ok")
    if coherent and os.path.exists(spm_ok) and read_text(spm_ok).strip() != "1":
        problems.append("the memory for the coherent devices is not reserved RAM in the guest "
                        "(see the spm: lines above); test_hmm has no coherent devices")
    if test_hmm == "m" and read_text(os.path.join(res, "insmod.rc"), "0").strip() != "0":
        problems.append("insmod test_hmm failed: " + read_text(os.path.join(res, "insmod.txt"), "").strip())
    return problems


def trace_tally(traces):
    tally = {}
    for v in traces.values():
        tally[v] = tally.get(v, 0) + 1
    return tally


def repro_command(run_flags, name):
    """The lab command that runs one case alone, in both suites, on the same kernel."""
    return "scripts/lab run " + " ".join([*run_flags, "--only", shlex.quote("^" + re.escape(name) + "$")])


def prefix_command(run_flags, name):
    """The lab command that runs the case after the cases of its variant before it: a
    finding that needs the device in the state earlier cases left it in."""
    variant = name.rsplit(".", 1)[0] + "."
    return "scripts/lab run " + " ".join([*run_flags, "--only", shlex.quote("^" + re.escape(variant)),
                                          "--upto", name])


def findings(results, rows, disagree, grouped, run_flags):
    """The kernel findings: every case with a NEW splat, a kernel fault or hang, or
    a failure in both suites. Each: case, suites, kind, the splat's first lines, and
    the command that reproduces it alone."""
    out = {}
    for n, c, d, *_ in rows:
        kinds, first = [], None
        for suite, verdict in (("kselftest", c), ("dmirror", d)):
            if verdict == "crash":
                kinds.append(f"{suite}: {results[suite][n]['detail']}")
            new = [s for s in grouped.get(f"{suite}:{n}", []) if not s["known"] and not s["after_fault"]]
            if new:
                kinds.append(f"{suite}: {len(new)} new splat(s): {new[0]['title']}")
                first = first or new[0]
        if c in FAILED and d in FAILED + ("-",) and n not in disagree:
            # the C suite's TAP line carries no reason; dmirror's result does
            why = (results["dmirror"].get(n, {}).get("detail") or results["kselftest"][n].get("detail") or
                   "see kselftest.tap")
            kinds.append("fails in " + ("both suites" if d != "-" else "the C suite") + ": " + why[:160])
        if kinds:
            # the splat's first lines: a new one, else the first the case logged at all
            first = first or next((s for suite in ("kselftest", "dmirror")
                                   for s in grouped.get(f"{suite}:{n}", [])), None)
            out[n] = {"case": n, "kinds": kinds,
                      "splat": "\n".join(first["head"]) if first else "",
                      "splat_known": bool(first and first["known"]),
                      "repro": repro_command(run_flags, n), "repro_prefix": prefix_command(run_flags, n)}
    # splats outside any case (boot, insmod, rmmod) are findings of the lab step
    for test, ss in grouped.items():
        if not test.startswith(("kselftest:", "dmirror:")):
            new = [s for s in ss if not s["known"] and not s["after_fault"]]
            if new:
                out[test] = {"case": test, "kinds": [f"{len(new)} new splat(s): {new[0]['title']}"],
                             "splat": "\n".join(new[0]["head"]),
                             "repro": "scripts/lab run " + " ".join(run_flags) + " --only '^$'"}
    return list(out.values())


def findings_txt(found):
    parts = []
    for f in found:
        splat = ""
        if f["splat"]:
            splat = (f"first lines of its {'known ' if f.get('splat_known') else ''}splat:\n" +
                     "".join(f"    {x}\n" for x in f["splat"].splitlines()))
        prefix = (f"if it does not fail alone, with the cases of its variant before it:\n    "
                  f"{f['repro_prefix']}\n" if f.get("repro_prefix") else "")
        parts.append(f"### {f['case']}\n" + "".join(f"- {k}\n" for k in f["kinds"]) + splat +
                     f"reproduce alone:\n    {f['repro']}\n" + prefix)
    return "\n".join(parts)


def ratio(c, d):
    return round(d / c, 3) if c and d else None


def report(ctx):
    """Writes the report files into ctx.out, prints the table and the checks;
    returns (exit status 0 or 1, the summary dict also written to summary.json).
    ctx: out, cell, label, info, boots, notrun, names ({suite: listed cases}),
    dmirror_status, dmirror_ok, trace_status, run_flags (what reproduces this run),
    trace (dmirror ran with --trace)."""
    out, cell = ctx.out, ctx.cell
    last = ctx.boots[-1]
    res = last.results
    problems = []

    klog = boots_mod.kernel_log(ctx.boots)
    with open(os.path.join(out, "kernel.log"), "w") as f:
        f.write(klog)
    invalid = {(b.number, f"{suite}:{name}") for b in ctx.boots for suite, name in b.after_fault}
    found = splats.classify_splats(splats.find_splats(klog.splitlines()), splats.load_known_splats(), invalid)
    # with --explore, a splat inside an explore scenario is judged against the simulator's
    # exploration of that scenario (explore.report), not against known-splats.tsv
    judged = [s for s in found if not s["known"] and getattr(ctx, "explore_judged", False)
              and s["test"].startswith("dmirror:explore.")]
    for s in judged:
        s["judged"] = True
    with open(os.path.join(out, "splats.txt"), "w") as f:
        f.write(splats.splats_txt(found))
    grouped = splats.by_test(found)

    results = boots_mod.merge(ctx.boots, ctx.notrun, getattr(ctx, "c_resumable", True))
    cres, dres = results["kselftest"], results["dmirror"]
    corder = [n for n in ctx.names["kselftest"] if n in cres]
    dorder = [n for n in ctx.names["dmirror"] if n in dres]
    dmirror_ran = bool(ctx.names["dmirror"])
    boot_results = {b.number: b.results for b in ctx.boots}

    def c_body(n):
        where = boot_results.get(cres[n].get("boot"))
        return read_text(os.path.join(where, "kselftest", f"{n}.out"), "").splitlines() if where else []

    tap.write_tap(os.path.join(out, "kselftest.tap"), corder, cres, c_body)
    backend = next((guest.dmirror_results(b.results)[0] for b in ctx.boots
                    if guest.dmirror_results(b.results)[0]), None)
    header = [f"# dmirror: backend {backend.get('name')} ({backend.get('detail')})"] if backend else []
    numbers = {n: i for i, n in enumerate(dorder, 1)}
    tap.write_tap(os.path.join(out, "dmirror.tap"), dorder, dres,
                  lambda n: guest.dmirror_case_lines(n, dres[n], numbers[n])
                  if dres[n]["verdict"] in ("pass", "fail", "skip") else [], header)

    traces, trace_details = dmirror.read_trace_comparison(out)
    rows, disagree, both_failed, c_only_fail = verdict_table(
        corder, cres, dorder, dres, dmirror_ran, traces,
        lambda suite, n: splats.splat_cell(grouped, suite, n))
    with open(os.path.join(out, "verdicts.tsv"), "w") as f:
        f.write(verdicts_tsv(rows))
    kfind = findings(results, rows, disagree, grouped, ctx.run_flags)
    with open(os.path.join(out, "findings.txt"), "w") as f:
        f.write(findings_txt(kfind))

    # ---- print
    release = guest.kernel_release(res) or ctx.info.get("release")
    thp = guest.guest_thp(res)
    say("")
    say(f"cell {ctx.label}: kernel {release} ({'KASAN, ' if ctx.info.get('kasan') else ''}PROVE_LOCKING, "
        f"DEBUG_VM; profile {cell.profile.name}; TEST_HMM={cell.test_hmm}; THP={thp}; "
        f"{len(ctx.boots)} boot(s))")
    for b in ctx.boots:
        for line in read_text(os.path.join(b.results, "notes.txt"), "").splitlines():
            say(f"guest (boot {b.number}): {line}")
    say(ctx.dmirror_status)
    say("")
    for line in table_lines(rows, disagree):
        say(line)
    say("")
    say(count_line("kselftest", cres))
    if dmirror_ran:
        say(count_line("dmirror", dres))
        missing = [n for n in corder if n not in dres]
        extra = [n for n in dorder if n not in cres]
        if missing:
            say(f"dmirror lacks {len(missing)} C case(s): {first_few(missing)}")
        if extra:
            say(f"dmirror has {len(extra)} case(s) the C suite lacks: {first_few(extra)}")

    # ---- checks
    if not ctx.names["kselftest"]:
        problems.append("the C suite listed no cases (hmm-tests -l failed?)")
    if thp and thp != cell.thp:
        problems.append(f"the guest ran with THP {thp}, the cell wants {cell.thp}")
    coh_skipped = coherent_skipped(corder, cres)
    if cell.coherent and coh_skipped:
        problems.append(f"the device-coherent variant was skipped ({len(coh_skipped)} cases): "
                        "test_hmm has no coherent devices; see notes above and kernel.log")
    problems += module_problems(ctx.boots[0].results, cell.test_hmm, cell.coherent, getattr(ctx, "spm", None))
    unload, unload_line, unload_problems = unload_status(res, cell.test_hmm, last.ended)
    problems += unload_problems
    say(unload_line)
    new = [s for s in found if not s["known"] and not s["after_fault"] and s not in judged]
    stale = sum(1 for s in found if not s["known"] and s["after_fault"] and s not in judged)
    known = len(found) - len(new) - stale - len(judged)
    say(f"kernel log: {len(found)} splat(s), {known} known, {len(new)} new"
        f"{f', {stale} in cases that ran after a fault (run again in a fresh boot)' if stale else ''}"
        f"{f', {len(judged)} in explore scenarios (judged against the simulator below)' if judged else ''} "
        f"(details in {out}/splats.txt)")
    for line in splats.summary_lines(found):
        say(line)
    if any("lockdep" in s["text"] and "turning off the locking correctness validator" in s["text"]
           for s in found) or any(re.search(r"possible (recursive|circular)", s["text"]) for s in found):
        say("note: lockdep reports once per boot and then turns itself off; the lab gives dmirror's "
            "cases a fresh boot when it did so during the C suite")
    if new:
        problems.append(f"{len(new)} kernel splat(s) not on scripts/known-splats.tsv (see splats.txt)")
    for n in disagree:
        problems.append(f"disagreement on {n}: C {cres[n]['verdict']} {cres[n]['detail']!s} vs dmirror "
                        f"{dres[n]['verdict']} {dres[n]['detail']!s}".rstrip())
    no_result = [n for s in (cres, dres) for n, r in s.items() if r["detail"].startswith("no result")]
    if no_result:
        problems.append(f"{len(no_result)} case(s) have no result: {first_few(no_result)}")
    tally = trace_tally(traces)
    say(ctx.trace_status)
    if traces:
        say("traces (kernel vs simulator, command by command): " +
            ", ".join(f"{k} {v}" for k, v in sorted(tally.items())) + f" (details in {out}/traces.txt)")
    # a case the kernel itself gets wrong in this cell (fails in both suites, or faults) is a
    # finding; the simulator models the kernel's design, not its bugs, so a trace that differs
    # there is reported with the finding rather than failing the run
    broken = set(both_failed) | {r[0] for r in rows if "crash" in (r[1], r[2])}
    sim_in_findings = sorted(n for n, v in traces.items() if v == "differs" and n in broken)
    for n, verdict in traces.items():
        if verdict == "differs" and n not in broken:
            problems.append(f"the simulator answers {n} differently from the kernel: " +
                            " / ".join(trace_details.get(n, [])[:2]))
    if sim_in_findings:
        say(f"traces that differ in cases the kernel fails in this cell (kernel findings, not counted "
            f"against the simulator): {first_few(sim_in_findings)}")
    if both_failed:
        say("kernel findings (failed in both suites): " + ", ".join(both_failed))
    if c_only_fail:
        say("kernel findings (C suite failed; dmirror has no verdict): " + ", ".join(c_only_fail))
    if kfind:
        say(f"kernel findings, each with the command that reproduces it alone ({out}/findings.txt):")
        for f in kfind:
            say(f"  {f['case']}: {'; '.join(f['kinds'])}")
            say(f"    {f['repro']}")
    if not ctx.dmirror_ok:
        problems.append(ctx.dmirror_status)
    if dmirror_ran and not backend:
        err = " ".join(read_text(os.path.join(b.results, "dmirror.err"), "").strip() for b in ctx.boots)
        problems.append("dmirror does not run in the guest: " + (err.strip()[:300] or "no output"))

    times = boots_mod.suite_times(klog)
    c_wall, d_wall = times.get("kselftest"), times.get("dmirror")
    r = ratio(c_wall, d_wall)
    same_boot = len(ctx.boots) == 1
    # when the suites ran different cases (an older kernel's C suite has fewer), the wall
    # times do not compare; the cases both ran do, case by case
    common = [n for n in corder if cres[n]["verdict"] in REAL_VERDICTS
              and dres.get(n, {}).get("verdict") in REAL_VERDICTS]
    c_common = round(sum(cres[n]["secs"] for n in common), 3)
    d_common = round(sum(dres[n]["secs"] for n in common), 3)
    same_cases = len(common) == len([n for n in dorder if dres[n]["verdict"] in REAL_VERDICTS]) == \
        len([n for n in corder if cres[n]["verdict"] in REAL_VERDICTS])
    if c_wall or d_wall:
        say(f"times in the guest{' (same boot)' if same_boot else ' (summed over boots)'}: C suite "
            f"{c_wall} s, dmirror {d_wall} s{f', ratio {r}' if r else ''} (dmirror "
            f"{'with' if ctx.trace else 'without'} --trace; goal <= 1.05)")
        say(f"times of the {len(common)} cases both suites ran, case by case: C {c_common} s, dmirror "
            f"{d_common} s{f', ratio {ratio(c_common, d_common)}' if c_common else ''}"
            f"{'' if same_cases else ' (the suites ran different cases: compare these, not the walls)'}")
    summary = {
        "cell": ctx.label, "cell_name": cell.name, "release": release, "thp": thp,
        "test_hmm": cell.test_hmm, "profile": cell.profile.name, "boots": len(ctx.boots),
        "boot_ends": [b.ended for b in ctx.boots],
        "kselftest": counts(cres), "dmirror": counts(dres) if dmirror_ran else None,
        "disagree": disagree, "traces": tally, "traces_differ_in_findings": sim_in_findings,
        "splats": {"known": known, "new": len(new), "after_fault": stale, "explore": len(judged)},
        "unload": unload, "times": {"kselftest_s": c_wall, "dmirror_s": d_wall, "ratio": r,
                                    "same_boot": same_boot, "trace": ctx.trace, "same_cases": same_cases,
                                    "common_cases": len(common), "kselftest_common_s": c_common,
                                    "dmirror_common_s": d_common, "ratio_common": ratio(c_common, d_common),
                                    "qemu_s": round(sum(b.wall for b in ctx.boots), 1),
                                    "build_s": ctx.info.get("build_seconds") if not ctx.info.get("cached")
                                    else 0},
        "findings": kfind, "problems": problems,
        "verdicts": {s: {n: r["verdict"] for n, r in rs.items()} for s, rs in results.items()},
        "splat_list": [{"test": s["test"], "title": s["title"], "message": s["message"],
                        "known": bool(s["known"]), "fatal": s["fatal"], "line": s["line"],
                        "after_fault": s["after_fault"],
                        "head": s["head"]} for s in found],
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    say(f"files: {out}/kselftest.tap dmirror.tap kernel.log verdicts.tsv splats.txt findings.txt "
        f"traces.txt summary.json guest/")
    if problems:
        say("")
        for p in problems:
            say(f"lab: FAIL: {p}")
        return 1, summary
    say("lab: OK")
    return 0, summary
