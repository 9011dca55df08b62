"""One cell, end to end: build (or reuse) its kernel, list both suites' cases,
boot as often as faults require, compare dmirror's kernel traces with the
simulator's, and report. `run`, `matrix`, `compare` and `mutants` all go
through run_cell."""

import dataclasses
import json
import os
import shutil
import subprocess
import time
import types

from . import boots, build, deps, dmirror, explore, extras, guest, qemu, report
from .common import REPO, LabError, fmt_secs, read_text, say

TRACES = os.path.join(REPO, "Tests", "KernelTraces")


def list_kselftest(hmm_tests, tree=None):
    """The C suite's case names: from `hmm-tests -l` (it only prints its table), or,
    when the tree's harness has no -l (it would run every case), from hmm-tests.c."""
    if tree and not build.harness_filters(tree):
        names = guest.kselftest_names_from_source(
            read_text(os.path.join(build.selftests_dir(tree), "hmm-tests.c"), ""))
        if not names:
            raise LabError(f"found no TEST_F in {tree}'s hmm-tests.c; pass a Linux tree with the HMM "
                           "selftest")
        return names
    try:
        r = subprocess.run([hmm_tests, "-l"], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LabError(f"{hmm_tests} -l did not list the C suite ({e}); rebuild with --rebuild") from None
    names = guest.kselftest_names(r.stderr + r.stdout)
    if not names:
        raise LabError(f"{hmm_tests} -l listed no case (exit {r.returncode}); rebuild with --rebuild")
    return names


def list_dmirror(path):
    if not path:
        return []
    r = subprocess.run([path, "list"], check=False, capture_output=True, text=True)
    names = [n for n in r.stdout.split() if n]
    if r.returncode != 0 or not names:
        raise LabError(f"{path} list failed (exit {r.returncode}): "
                       f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return names


def guest_settings(args, cell):
    """How this cell's guest boots: the profile's machine, --cpus/--mem/... overrides."""
    p = cell.profile
    return types.SimpleNamespace(
        mem=args.mem or p.mem_mib, cpus=args.cpus or p.cpus,
        thp=None if p.thp_from_config else cell.thp, numa=p.numa_mib,
        append=[*p.append, *(args.append or [])], builtin=cell.test_hmm == "y",
        panic_on_oops=args.panic_on_oops or "oops=panic" in p.append, kvm=args.kvm, cpu=args.cpu)


def run_flags(args, cell, extra=()):
    """The `scripts/lab run` options that reproduce this run (a finding's command)."""
    flags = ["--cell", cell.name]
    if getattr(args, "dmirror", None):
        flags += ["--dmirror", os.path.realpath(args.dmirror)]
    if args.source:
        flags += ["--source", os.path.realpath(args.source)]
    if args.kasan:
        flags.append("--kasan")
    if getattr(args, "mutant", None):
        flags += ["--mutant", args.mutant]
    return flags + list(extra) + ["--out", "/tmp/lab-repro"]


def merge_traces(boot_list, results, dest):
    """Every boot's dmirror traces in one folder; the trace of a case a kernel fault
    or hang cut short is left out (the case is a finding, its trace is incomplete)."""
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for b in boot_list:
        src = os.path.join(b.results, "dmirror-traces")
        if not os.path.isdir(src):
            continue
        for f in os.listdir(src):
            name = f[:-len(".trace")]
            if f.endswith(".trace") and results["dmirror"].get(name, {}).get("verdict") != "crash":
                shutil.copy(os.path.join(src, f), os.path.join(dest, f))
    return dest


def cell_findings(summary):
    """The cell's kernel findings as cell.json carries them: {case: one-line reason},
    from the run's summary (cases failing in both suites, kernel faults, hangs, new
    splats). A finding of a lab step (boot, insmod, rmmod) names no case and is
    left out. `swift test` tolerates trace differences only in these cases."""
    summary = summary or {}
    cases = set().union(*(summary.get("verdicts", {}).values() or [()]))
    out = {}
    for f in summary.get("findings", []):
        case = f.get("case", "")
        if case not in cases:
            continue
        reason = "; ".join(" ".join(k.split()) for k in f.get("kinds", []))
        out[case] = reason[:300] if len(reason) <= 300 else reason[:297] + "..."
    return dict(sorted(out.items()))


def write_cell_json(dest, cell, release, summary=None):
    with open(os.path.join(dest, "cell.json"), "w") as f:
        json.dump({**cell.as_json(release), "findings": cell_findings(summary)}, f, indent=1)
        f.write("\n")


def record_traces(cell, release, kernel_traces, root=TRACES, summary=None):
    """Tests/KernelTraces/<cell>/: the kernel's traces of this cell and cell.json
    (with the cell's kernel findings from summary), for `swift test` to hold the
    simulator to."""
    dest = os.path.join(root, cell.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    n = 0
    for f in sorted(os.listdir(kernel_traces)):
        if f.endswith(".trace"):
            shutil.copy(os.path.join(kernel_traces, f), os.path.join(dest, f))
            n += 1
    write_cell_json(dest, cell, release, summary)
    return dest, n


def run_cell(args, cell, out, info=None, label=None, dmirror_path=None, dstatus=None):
    """Runs one cell into out; returns (exit status, summary). info: an already
    built kernel (a mutant's module); dmirror_path/dstatus: a dmirror already found."""
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    label = label or cell.name + (" +kasan" if args.kasan else "") + (" (source)" if args.source else "")
    say(f"== cell {label}")
    if info is None:
        deps.ensure_deps()
        info = build.build(args, cell)
    if dstatus is None:
        dmirror_path, dstatus, dok = dmirror.build_dmirror(args, out)
    else:
        dok = True
    say(dstatus)
    c_whole = not build.harness_filters(info["tree"])
    names = {"kselftest": list_kselftest(info["hmm_tests"], info["tree"]),
             "dmirror": list_dmirror(dmirror_path)}
    upto = getattr(args, "upto", None)
    if upto and upto not in names["kselftest"] + names["dmirror"]:
        raise LabError(f"--upto {upto}: no such case; `dmirror list` shows every name")
    todo, notrun = boots.plan(names["kselftest"], names["dmirror"], args.bench, args.only, upto)
    if not any(todo.values()):
        raise LabError(f"--only {args.only!r} matches no case; `dmirror list` shows every name")
    settings = guest_settings(args, cell)
    spm0, spm1, _ = qemu.spm_layout(settings.mem)
    trace = not args.no_trace
    if c_whole and (args.only or upto):
        say("kselftest: this tree's harness has no -r: hmm-tests runs every case, the lab keeps "
            "the ones asked for")
    config = guest.config_text("run", spm0, spm1, cell.test_hmm, args.test_timeout, trace, cell.thp, c_whole)
    boot_list = boots.run_boots(out, settings, info, dmirror_path, todo, config, args.hang_after,
                                args.timeout, c_resumable=not c_whole,
                                extra=extras.guest_files(args, info, out, dmirror_path))
    explore_boots = []
    if getattr(args, "explore", None):
        def boot_again(d, files):
            return boots.run_boots(d, settings, info, dmirror_path, {s: [] for s in guest.SUITES}, config,
                                   args.hang_after, args.timeout, c_resumable=not c_whole, extra=files)
        explore_names = extras.explore_names(args, dmirror_path)
        explore_boots = explore.more_boots(out, explore_names, args.explore, boot_list, boot_again,
                                           extras.explore_script)
    results = boots.merge(boot_list, notrun, not c_whole)
    kernel_traces = merge_traces(boot_list, results, os.path.join(out, "dmirror-traces"))
    release = guest.kernel_release(boot_list[0].results) or info.get("release")
    thp = guest.guest_thp(boot_list[0].results)
    trace_status = (dmirror.compare_traces(out, dmirror_path, release, thp, kernel_traces) if trace
                    else "traces: not recorded (--no-trace)")
    ctx = types.SimpleNamespace(out=out, cell=cell, label=label, info=info, boots=boot_list, notrun=notrun,
                                names=names, dmirror_status=dstatus, dmirror_ok=dok,
                                trace_status=trace_status, run_flags=run_flags(args, cell), trace=trace,
                                spm=(spm0, spm1), c_resumable=not c_whole,
                                explore_judged=bool(getattr(args, "explore", None)))
    status, summary = report.report(ctx)

    def failed(problems):
        """Prints the extras' problems and records them; the run fails if there is one."""
        nonlocal status
        for p in problems:
            say(f"lab: FAIL: {p}")
        summary["problems"] = summary.get("problems", []) + problems
        status = status or (1 if problems else 0)

    if getattr(args, "scenarios", False) or getattr(args, "record_scenarios", False):
        ctx.dmirror_path = dmirror_path
        summary["scenarios"] = extras.scenarios_report(ctx, record=getattr(args, "record_scenarios", False))
    if getattr(args, "explore", None):
        summary["explore"], problems = explore.report(explore_names, boot_list + explore_boots, dmirror_path,
                                                      release, thp)
        failed(problems)
    if getattr(args, "stress", None):
        summary["stress"] = extras.stress_report(ctx)
        if summary["stress"] is None:
            failed([f"--stress: the guest did not run {extras.STRESS}"])
        elif summary["stress"]["stale"] and not getattr(args, "mutant", None):
            failed([f"{extras.STRESS}: the kernel left a stale device mapping in "
                    f"{summary['stress']['stale']} repetition(s)"])
    if getattr(args, "extras", False):
        ctx.dmirror_path = dmirror_path
        summary["extras"], problems = extras.report(ctx, release, thp)
        failed(problems)
    if getattr(args, "record_traces", False) and trace and not args.only and not upto:
        dest, n = record_traces(cell, release, kernel_traces, summary=summary)
        say(f"traces: recorded {n} kernel traces and cell.json in {os.path.relpath(dest, REPO)}")
    summary["times"]["lab_s"] = round(time.time() - t0, 1)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"cell": cell.name, "label": label, "info": info, "dmirror": dmirror_path,
                   "dmirror_status": dstatus, "dmirror_ok": dok, "trace_status": trace_status,
                   "names": names, "notrun": notrun, "trace": trace, "run_flags": ctx.run_flags,
                   "spm": [spm0, spm1], "c_resumable": not c_whole,
                   "boots": [dataclasses.asdict(b) for b in boot_list],
                   "args": {k: v for k, v in vars(args).items() if k != "func"}}, f, indent=1)
    say(f"cell {label}: {'OK' if status == 0 else 'FAIL'} in {fmt_secs(time.time() - t0)}")
    return status, summary


def report_again(out):
    """Re-reads an earlier run's folder and prints its report (after an edit of
    known-splats.tsv, say); returns the exit status."""
    saved = json.loads(read_text(os.path.join(out, "run.json"), "{}") or "{}")
    if "boots" not in saved:
        raise LabError(f"{out}/run.json does not exist or is from an older lab; pass the --out DIR "
                       "of an earlier `scripts/lab run`")
    from . import cells
    boot_list = [boots.Boot(**{**b, "faulted": tuple(b["faulted"]) if b["faulted"] else None})
                 for b in saved["boots"]]
    ctx = types.SimpleNamespace(out=out, cell=cells.cell(saved["cell"]), label=saved["label"],
                                info=saved["info"], boots=boot_list, notrun=saved["notrun"],
                                names=saved["names"], dmirror_status=saved["dmirror_status"],
                                dmirror_ok=saved["dmirror_ok"], trace_status=saved["trace_status"],
                                run_flags=saved["run_flags"], trace=saved["trace"], spm=saved.get("spm"),
                                c_resumable=saved.get("c_resumable", True))
    return report.report(ctx)[0]


def load_summary(out):
    path = os.path.join(out, "summary.json")
    if not os.path.exists(path):
        raise LabError(f"{path} does not exist; pass the --out DIR of an earlier `scripts/lab run`")
    return json.loads(read_text(path))
