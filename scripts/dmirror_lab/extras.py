"""What runs in the guest after both suites, in the same boot, before the unload:
`--guest-script FILE` (anything), and `--extras`: `dmirror bench --backend kernel`
beside the C loop scripts/hmm-bench.c (built against the tree's
lib/test_hmm_uapi.h), `dmirror doctor`, and `dmirror run --count-walks` on a few
migrate cases, whose page-table walks are set beside the simulator's."""

import contextlib
import os
import re
import shlex
import shutil
import subprocess

from . import dmirror as dm
from .common import REPO, LabError, read_text, say

HMM_BENCH = os.path.join(REPO, "scripts", "hmm-bench.c")
SCENARIOS = os.path.join(REPO, "Tests", "Scenarios")
# the migrate cases whose walks --extras counts (private and coherent: the coherent
# device's migrations walk as the private one's do)
WALK_CASES = ["hmm.hmm_device_private.migrate", "hmm.hmm_device_private.migrate_fault",
              "hmm.hmm_device_private.migrate_multiple", "hmm.hmm_device_private.migrate_anon_huge_empty",
              "hmm.hmm_device_coherent.migrate_fault"]
# per repeat, and repeats: enough for a stable median under TCG without minutes per operation
BENCH_ITERATIONS = 200
BENCH_REPEATS = 5


STRESS = "read-retry-stress"


def stress_script(repeat):
    """The part of /lab/extra.sh for --stress N: the kernel-side concurrent check
    `read-retry-stress` (Sources/Explore/KernelStress.swift), N repetitions."""
    return (f"/lab/dmirror explore {STRESS} --backend kernel --repeat {int(repeat)} --format json "
            f"--kmsg-markers > stress.json 2> stress.err; echo $? > stress.rc\n")


def catalogue(dmirror_path):
    """The scenarios of `dmirror explore --list` (name, summary)."""
    r = subprocess.run([dmirror_path, "explore", "--list"], check=False, capture_output=True, text=True)
    return [tuple(line.split(": ", 1)) for line in r.stdout.splitlines()
            if line and not line.startswith(" ") and ": " in line]


def explore_names(args, dmirror_path):
    """The scenarios --explore runs, in order: --explore-only's, else the whole catalogue."""
    if not dmirror_path:
        raise LabError("--explore needs dmirror (drop --no-dmirror)")
    wanted = [n.strip() for n in (getattr(args, "explore_only", None) or "").split(",") if n.strip()]
    known = [n for n, _ in catalogue(dmirror_path)]
    names = [n for n in wanted if n in known] if wanted else known
    if not names:
        raise LabError(f"--explore-only {args.explore_only}: no such scenario (`dmirror explore --list`)")
    return names


def explore_script(names, repeat):
    """The part of /lab/extra.sh for --explore N: every scenario of the catalogue on the
    kernel, N repetitions each, into explore/NAME.json (a simulator-only one refuses)."""
    lines = ["mkdir -p explore\n"]
    for n in names:
        q = shlex.quote(n)
        lines.append(f"/lab/dmirror explore {q} --backend kernel --repeat {int(repeat)} --format json "
                     f"--kmsg-markers > explore/{q}.json 2> explore/{q}.err; echo $? > explore/{q}.rc\n")
    return "".join(lines)


def kept_scenarios():
    """Tests/Scenarios/*.scn (the kept scenarios, not findings/), sorted."""
    return sorted(f for f in os.listdir(SCENARIOS) if f.endswith(".scn")) if os.path.isdir(SCENARIOS) else []


def scenarios_script(names):
    """The part of /lab/extra.sh for --scenarios: each kept scenario on the kernel, its
    report in scenarios/NAME.out (the .expected is its lines without # and !)."""
    lines = ["mkdir -p scenarios\n"]
    for f in names:
        n = shlex.quote(f[:-len(".scn")])
        lines.append(f"/lab/dmirror scenario --backend kernel /lab/scenarios/{n}.scn > scenarios/{n}.out "
                     f"2> scenarios/{n}.err; echo $? > scenarios/{n}.rc\n")
    return "".join(lines)


def expected_lines(report):
    """A scenario report's comparable lines: without its # and ! lines."""
    return [line for line in report.splitlines() if line and not line.startswith(("#", "!"))]


def scenarios_report(ctx, record=False):
    """--scenarios: each kept scenario's kernel lines against the simulator's (the
    simulator as ScenarioFilesTests runs it: `dmirror scenario --backend sim`).
    Writes out/scenarios/NAME.expected; with record, Tests/Scenarios/NAME.expected too.
    Returns {name: "same" | "differs" | "no output"}, printed."""
    d = extra_dir(ctx)
    sdir = os.path.join(d, "scenarios") if d else None
    if not sdir or not os.path.isdir(sdir):
        say("scenarios: the guest did not run the kept scenarios")
        return None
    dest = os.path.join(ctx.out, "scenarios")
    os.makedirs(dest, exist_ok=True)
    result = {}
    for f in kept_scenarios():
        name = f[:-len(".scn")]
        report = read_text(os.path.join(sdir, name + ".out"), "")
        kernel = expected_lines(report)
        if not report.strip():
            result[name] = "no output"
            continue
        text = "".join(line + "\n" for line in kernel)
        with open(os.path.join(dest, name + ".expected"), "w") as fh:
            fh.write(text)
        r = subprocess.run([ctx.dmirror_path, "scenario", "--backend", "sim", os.path.join(SCENARIOS, f)],
                           check=False, capture_output=True, text=True)
        sim = expected_lines(r.stdout)
        result[name] = "same" if sim == kernel else "differs"
        if sim != kernel:
            with open(os.path.join(dest, name + ".sim"), "w") as fh:
                fh.write("".join(line + "\n" for line in sim))
        if record:
            with open(os.path.join(SCENARIOS, name + ".expected"), "w") as fh:
                fh.write(text)
    same = [n for n, v in result.items() if v == "same"]
    other = {n: v for n, v in result.items() if v != "same"}
    say(f"scenarios: {len(result)} kept scenarios on the kernel: {len(same)} the same as the simulator"
        + ("; " + ", ".join(f"{n} {v}" for n, v in other.items()) if other else "")
        + f" (kernel lines in {dest}/NAME.expected, the simulator's beside a differing one as NAME.sim)"
        + ("; recorded into Tests/Scenarios" if record else ""))
    return result


def extras_script(walk_cases=WALK_CASES, iterations=BENCH_ITERATIONS, repeats=BENCH_REPEATS):
    """The part of /lab/extra.sh for --extras; /init runs it in results/extra/. The C
    loop runs before and after dmirror's, so a drift of the machine between them shows."""
    walks = " ".join(f"-r {shlex.quote(n)}" for n in walk_cases)
    # each run starts from compacted memory, so THP-backed buffers and device THP round
    # trips find 2 MiB blocks alike in all three
    return f"""D=/lab/dmirror
compact() {{ echo 1 > /proc/sys/vm/compact_memory 2> /dev/null; }}
compact; /lab/hmm-bench {iterations} {repeats} > hmm-bench.txt 2> hmm-bench.err; echo $? > hmm-bench.rc
compact; $D bench --backend kernel --iterations {iterations} --repeats {repeats} --compare hmm-bench.txt \\
	> bench.txt 2>&1; echo $? > bench.rc
compact; /lab/hmm-bench {iterations} {repeats} > hmm-bench-after.txt 2>> hmm-bench.err
$D doctor > doctor.txt 2>&1; echo $? > doctor.rc
grep -q " /sys/kernel/tracing " /proc/mounts || mount -t tracefs nodev /sys/kernel/tracing 2> /dev/null
mkdir -p walks
$D run --backend kernel --count-walks --trace walks {walks} > walks.tap 2>&1; echo $? > walks.rc
"""


def build_hmm_bench(info, out):
    """scripts/hmm-bench.c, static, against the tested tree's lib/test_hmm_uapi.h."""
    header = os.path.join(info["tree"], "lib", "test_hmm_uapi.h")
    if not os.path.exists(header):
        raise LabError(f"--extras: {header} does not exist; the tree has no test_hmm")
    binary = os.path.join(out, "hmm-bench")
    cc = shutil.which("gcc") or "cc"
    cmd = [cc, "-O2", "-static", "-Wall", "-I", os.path.dirname(header), "-o", binary, HMM_BENCH]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if r.returncode != 0:
        raise LabError(f"--extras: {cc} could not build scripts/hmm-bench.c: "
                       f"{(r.stderr.strip().splitlines() or ['no output'])[-1]}")
    return binary


def guest_files(args, info, out, dmirror_path=None):
    """(name under /lab, or an absolute guest path; host path) pairs for the initramfs;
    extra.sh is what /init runs."""
    files = []
    script = getattr(args, "guest_script", None)
    stress = getattr(args, "stress", None)
    explore = getattr(args, "explore", None)
    scenarios = getattr(args, "scenarios", False) or getattr(args, "record_scenarios", False)
    if getattr(args, "extras", False) or stress or explore or scenarios:
        if script:
            raise LabError("--extras/--stress and --guest-script both give the guest's extra.sh; pass one")
        text = "#!/bin/sh\n# scripts/lab --extras/--stress: written by dmirror_lab/extras.py\n"
        # the least likely to take the kernel down first: a fault ends the boot, and what
        # came after it in the script does not run
        if getattr(args, "extras", False):
            text += extras_script()
            files.append(("hmm-bench", build_hmm_bench(info, out)))
            if info.get("config") and info.get("release") and os.path.exists(info["config"]):
                # dmirror doctor reads CONFIG_TEST_HMM from /boot/config-$(uname -r), as on Debian
                files.append((f"/boot/config-{info['release']}", info["config"]))
        if scenarios:
            names = kept_scenarios()
            text += scenarios_script(names)
            files += [(f"scenarios/{f}", os.path.join(SCENARIOS, f)) for f in names]
        if stress:
            text += stress_script(stress)
        if explore:
            text += explore_script(explore_names(args, dmirror_path), explore)
        path = os.path.join(out, "extra.sh")
        with open(path, "w") as f:
            f.write(text)
        files.insert(0, ("extra.sh", path))
    elif script:
        if not os.path.isfile(script):
            raise LabError(f"--guest-script {script}: no such file")
        files.append(("extra.sh", os.path.realpath(script)))
    files += getattr(args, "guest_files_at", None) or []   # (guest name, host path) pairs
    for path in getattr(args, "guest_file", None) or []:
        if not os.path.isfile(path):
            raise LabError(f"--guest-file {path}: no such file")
        files.append((os.path.basename(path), os.path.realpath(path)))
    return files


# ------------------------------------------------------------ the host's report

WALKS = re.compile(r" walks=(\d+)")


def trace_walks(text):
    """[(command line without walks=, walks)] of a trace's commands that carry walks=."""
    out = []
    for line in text.splitlines():
        m = WALKS.search(line)
        if m and not line.startswith("#"):
            out.append((WALKS.sub("", line), int(m.group(1))))
    return out


def compare_walks(kernel_dir, sim_dir):
    """Per case: (commands with walks on the kernel, on the simulator, [(index, command,
    kernel walks, sim walks)] where they differ). A case missing on one side is skipped."""
    result = {}
    for f in sorted(os.listdir(kernel_dir)) if os.path.isdir(kernel_dir) else []:
        if not f.endswith(".trace"):
            continue
        k = trace_walks(read_text(os.path.join(kernel_dir, f), ""))
        s = trace_walks(read_text(os.path.join(sim_dir, f), "")) if os.path.isdir(sim_dir) else []
        diffs = [(i, kc, kw, sw) for i, ((kc, kw), (_, sw)) in enumerate(zip(k, s, strict=False)) if kw != sw]
        result[f[:-len(".trace")]] = {"kernel": sum(w for _, w in k), "sim": sum(w for _, w in s),
                                      "commands": len(k), "sim_commands": len(s), "differ": diffs}
    return result


def extra_dir(ctx):
    """results/extra of the last boot that ran the extras, or None."""
    boot = next((b for b in reversed(ctx.boots)
                 if os.path.exists(os.path.join(b.results, "extra.rc"))), None)
    # a boot the extras ended (a kernel fault) has their results so far, and no extra.rc
    boot = boot or next((b for b in reversed(ctx.boots) if os.path.isdir(os.path.join(b.results, "extra"))),
                        None)
    return os.path.join(boot.results, "extra") if boot else None


def stale_reads(lines):
    """The last READs of a read-retry-stress outcome that returned anything but zero
    pages: the DONTNEED discarded every page before them, so only a mirror entry
    left pointing at a freed page answers otherwise."""
    out = []
    for line in lines:
        m = re.match(r"final: READ .* data=\[([^\]]*)\]", line)
        if m and any(p != "0" for p in m.group(1).split(",")):
            out.append(line)
    return out


def stress_report(ctx):
    """read-retry-stress on the kernel: {"repeats", "stale", "outcomes", "example", "rc"}
    (None when it did not run), printed."""
    d = extra_dir(ctx)
    path = os.path.join(d, "stress.json") if d else None
    if not path or not os.path.exists(path):
        return None
    doc = dm.load_document(read_text(path, "")) or {}
    rc = read_text(os.path.join(d, "stress.rc"), "").strip()
    outcomes = doc.get("outcomes") or []
    stale = [(o.get("count", 0), stale_reads(o.get("lines") or [])) for o in outcomes]
    caught = sum(n for n, s in stale if s)
    example = next((s[0] for _, s in stale if s), None)
    result = {"repeats": doc.get("schedules"), "stale": caught, "outcomes": len(outcomes), "example": example,
              "rc": rc, "seconds": doc.get("seconds")}
    if not doc:
        tail = (read_text(os.path.join(d, "stress.err"), "").strip().splitlines() or ["no output"])[-1]
        say(f"stress: {STRESS} on the kernel gave no report (exit {rc or '?'}): {tail}")
        return result
    say(f"stress: {STRESS} on the kernel: {result['repeats']} repetitions in {result['seconds']} s, "
        f"{len(outcomes)} distinct outcome(s), stale device data in {caught}"
        + (f"; first: {example}" if example else ""))
    return result


def report(ctx, release, thp):
    """Prints what the extras found (from the last boot that ran them) and returns
    (summary dict, problems)."""
    d = extra_dir(ctx)
    if d is None:
        return {"ran": False}, ["--extras: the guest did not run the extras (see kernel.log)"]
    summary, problems = {"ran": True}, []
    bench = read_text(os.path.join(d, "bench.txt"), "")
    say("extras: dmirror bench --backend kernel --compare (the C loop scripts/hmm-bench.c, same boot):")
    say("".join(f"    {line}\n" for line in bench.splitlines()).rstrip("\n") or "    (no output)")
    summary["bench"] = bench
    summary["bench_rc"] = read_text(os.path.join(d, "bench.rc"), "").strip()
    before = parse_bench(read_text(os.path.join(d, "hmm-bench.txt"), ""))
    after = parse_bench(read_text(os.path.join(d, "hmm-bench-after.txt"), ""))
    drift = {k: round(after[k] / before[k], 3) for k in before if k in after and before[k]}
    if drift:
        say("extras: the C loop again after dmirror's (after/before): " +
            ", ".join(f"{k} {v}" for k, v in drift.items()))
    summary["c_drift"] = drift
    verdicts = bench_verdicts(parse_bench(bench), before, after)
    if verdicts:
        say(f"extras: dmirror against the mean of the C loop's two runs (goal <= {BENCH_GOAL}; an operation "
            f"whose two C runs differ by more than {round((BENCH_STABLE - 1) * 100)}% is not judged):")
        for v in verdicts:
            say(f"    {v['operation']:<26} ratio {v['ratio']:<6} C spread {v['spread']:<6} {v['verdict']}")
    summary["bench_verdicts"] = verdicts
    doctor = read_text(os.path.join(d, "doctor.txt"), "")
    doctor_rc = read_text(os.path.join(d, "doctor.rc"), "").strip()
    say(f"extras: dmirror doctor (exit {doctor_rc or '?'}):")
    say("".join(f"    {line}\n" for line in doctor.splitlines()).rstrip("\n") or "    (no output)")
    summary["doctor"], summary["doctor_rc"] = doctor, doctor_rc
    if doctor_rc != "0":
        problems.append(f"--extras: dmirror doctor exited {doctor_rc or '?'} in the guest")
    walks_dir = os.path.join(d, "walks")
    walks_rc = read_text(os.path.join(d, "walks.rc"), "").strip()
    summary["walks_rc"] = walks_rc
    kernel_has = any(trace_walks(read_text(os.path.join(walks_dir, f), ""))
                     for f in (os.listdir(walks_dir) if os.path.isdir(walks_dir) else []))
    if not kernel_has:
        tail = (read_text(os.path.join(d, "walks.tap"), "").strip().splitlines() or ["no output"])[-1]
        say(f"extras: --count-walks recorded no walks (exit {walks_rc or '?'}): {tail}")
        summary["walks"] = None
        return summary, problems
    sim_dir = os.path.join(ctx.out, "extra-sim-walks")
    shutil.rmtree(sim_dir, ignore_errors=True)
    cases = sorted(f[:-len(".trace")] for f in os.listdir(walks_dir) if f.endswith(".trace"))
    subprocess.run(dm.sim_run_command(ctx.dmirror_path, release, thp, sim_dir, cases), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walks = compare_walks(walks_dir, sim_dir)
    summary["walks"] = {n: {k: v for k, v in w.items() if k != "differ"} | {"differ": len(w["differ"])}
                        for n, w in walks.items()}
    say("extras: page-table walks (walk_page_range + walk_page_range_vma), kernel vs simulator:")
    for n, w in walks.items():
        say(f"    {n}: kernel {w['kernel']} in {w['commands']} commands, simulator {w['sim']} in "
            f"{w['sim_commands']}" + (f"; {len(w['differ'])} command(s) differ" if w["differ"] else "; same"))
        for i, cmd, kw, sw in w["differ"][:3]:
            say(f"        command {i + 1}: {cmd}: kernel walks={kw}, simulator walks={sw}")
    return summary, problems


# dmirror's ioctl against the C loop's: the goal, and how far the C loop's two runs
# may differ before the machine, not dmirror, decides the ratio
BENCH_GOAL = 1.02
BENCH_STABLE = 1.10


def bench_verdicts(dmirror_ns, before, after):
    """Per operation: dmirror's median against the mean of the C loop's run before and
    after it, the C runs' spread (larger / smaller), and the verdict."""
    out = []
    for key, ns in dmirror_ns.items():
        c = [v for v in (before.get(key), after.get(key)) if v]
        if not c:
            continue
        mean, spread = sum(c) / len(c), max(c) / min(c)
        ratio = ns / mean
        if spread > BENCH_STABLE:
            verdict = "not judged: the C loop's own runs differ this much"
        else:
            verdict = "✔" if ratio <= BENCH_GOAL else "✘"
        out.append({"operation": key, "ratio": round(ratio, 3), "spread": round(spread, 3),
                    "verdict": verdict})
    return out


def parse_bench(text):
    """{"OPERATION on|off": ns}: hmm-bench's lines (OPERATION on|off NS), or the rows of
    `dmirror bench`'s table, whose third column is the median."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("on", "off"):
            with contextlib.suppress(ValueError):
                out[f"{parts[0]} {parts[1]}"] = float(parts[2])
    return out
