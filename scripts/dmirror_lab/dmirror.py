"""dmirror itself: building or locating the binary, and asking it things. Its
answers are read as JSON (`run --format jsonl` in guest.py, `compare-traces
--format json`, `abi --format json`), never by matching its text; the kernel
release -> ioctl ABI mapping lives only in dmirror."""

import json
import os
import re
import shutil
import subprocess
import time

from .common import REPO, LabError, fmt_secs, read_text, say


def build_dmirror(args, out):
    """Returns (path or None, status line, ok)."""
    if args.no_dmirror:
        return None, "dmirror: not run (--no-dmirror)", True
    if args.dmirror:
        p = os.path.realpath(args.dmirror)
        if not os.access(p, os.X_OK):
            raise LabError(f"--dmirror {args.dmirror}: not an executable file")
        return p, f"dmirror: using {p}", True
    pkg = os.path.join(REPO, "Package.swift")
    if not os.path.exists(pkg) or not re.search(r'\.executable\(\s*name:\s*"dmirror"', read_text(pkg)):
        return None, "dmirror: not built (no Package.swift / product)", True
    swift = shutil.which("swift") or ("/opt/swift/usr/bin/swift" if os.path.exists("/opt/swift/usr/bin/swift")
                                      else None)
    if not swift:
        return None, "dmirror: not built (swift is not installed)", False
    base = [swift, "build", "-c", "release", "--static-swift-stdlib", "--product", "dmirror"]
    logpath = os.path.join(out, "dmirror-build.log")
    say("dmirror: swift build -c release --static-swift-stdlib --product dmirror")
    t0 = time.time()
    with open(logpath, "wb") as log:
        r = subprocess.run(base, check=False, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = read_text(logpath).splitlines()[-8:]
        say("\n".join("    " + line for line in tail))
        return None, f"dmirror: not built (swift build failed, exit {r.returncode}; see {logpath})", False
    binpath = subprocess.run([*base, "--show-bin-path"], check=False, cwd=REPO,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
    path = os.path.join(binpath, "dmirror")
    if not os.access(path, os.X_OK):
        return None, f"dmirror: not built (swift build gave no {path})", False
    return path, f"dmirror: built in {fmt_secs(time.time() - t0)} ({path})", True


def load_document(text):
    """A JSON object from dmirror's stdout, or None when there is none (it crashed,
    was killed, or refused to run)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# ---------------------------------------------------------------- dmirror abi

def abi_generation(doc):
    """The ABI generation ("7.3") from `dmirror abi RELEASE --format json`."""
    abi = doc.get("abi") if doc else None
    return abi if isinstance(abi, str) and abi else None


def ask_abi(dmirror, release):
    """(generation, None), or (None, why) when dmirror knows no ABI for release."""
    r = subprocess.run([dmirror, "abi", release or "", "--format", "json"],
                       check=False, capture_output=True, text=True)
    abi = abi_generation(load_document(r.stdout)) if r.returncode == 0 else None
    if abi:
        return abi, None
    why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return None, f"dmirror abi {release}: {why}"


# ------------------------------------------------------ dmirror compare-traces

SHORT_VERDICT = {"same": "same", "differs": "differs", "nondeterministic": "nondet", "ignored": "ignored"}


def trace_verdicts(doc):
    """({case: verdict as verdicts.tsv shows it}, {case: [first differing line of A, of B]})
    from a `compare-traces --format json` document."""
    verdicts, details = {}, {}
    for case in doc.get("cases") or []:
        name, verdict = case.get("name"), case.get("verdict")
        if verdict == "missing":
            verdicts[name] = "missing in " + str(case.get("missing_in", "?")).upper()
            continue
        verdicts[name] = SHORT_VERDICT.get(verdict, str(verdict))
        if verdict == "differs":
            details[name] = [side_line("A", case.get("a")), side_line("B", case.get("b"))]
    return verdicts, details


def side_line(label, side):
    side = side or {}
    text = side.get("text")
    return f"{label}:{side.get('line', '?')}: {'(end of trace)' if text is None else text}"


def render_traces(doc):
    """The human traces.txt, as `compare-traces` prints it in text."""
    lines, counts = [], dict.fromkeys(("same", "differs", "missing", "nondeterministic", "ignored"), 0)
    for case in doc.get("cases") or []:
        name, verdict = case.get("name"), case.get("verdict")
        counts[verdict] = counts.get(verdict, 0) + 1
        if verdict == "differs":
            lines += [f"{name}: differs", "  " + side_line("A", case.get("a")),
                      "  " + side_line("B", case.get("b"))]
        elif verdict == "missing":
            lines.append(f"{name}: missing in {str(case.get('missing_in', '?')).upper()}")
        elif verdict == "nondeterministic":
            lines.append(f"{name}: nondeterministic (not compared)")
        else:
            lines.append(f"{name}: {verdict}")
    totals = doc.get("totals") or counts
    lines.append(f"# {totals.get('same', 0)} same, {totals.get('differs', 0)} differ, "
                 f"{totals.get('missing', 0)} missing, {totals.get('nondeterministic', 0)} nondeterministic, "
                 f"{totals.get('ignored', 0)} ignored")
    return "\n".join(lines) + "\n"


def sim_run_command(dmirror, release, thp, sim_traces, cases):
    """`dmirror run` on the simulator configured as the cell's kernel (its release
    decides the ABI and the driver's behaviour) and THP mode, for the given cases."""
    cmd = [dmirror, "run", "--backend", "sim", "--sim-release", release, "--sim-thp", thp,
           "--trace", sim_traces]
    for name in cases:
        cmd += ["-r", name]
    return cmd


def compare_traces(out, dmirror, release, thp, kernel_traces):
    """Replays the cases the kernel traced on dmirror's simulator, configured as
    the cell (--sim-release, --sim-thp), and compares the two command by command.
    Writes out/traces.json and out/traces.txt; returns a status line."""
    json_path = os.path.join(out, "traces.json")
    if os.path.exists(json_path):
        os.unlink(json_path)
    cases = sorted(f[:-len(".trace")] for f in os.listdir(kernel_traces) if f.endswith(".trace")) \
        if dmirror and os.path.isdir(kernel_traces) else []
    if not cases:
        return "traces: not compared (dmirror recorded no trace in the guest)"
    if not release or not thp:
        return "traces: not compared (the guest did not report its release and THP mode)"
    abi, why = ask_abi(dmirror, release)
    if not abi:
        return f"traces: not compared ({why})"
    sim_traces = os.path.join(out, "sim-traces")
    shutil.rmtree(sim_traces, ignore_errors=True)
    t0 = time.time()
    with open(os.path.join(out, "sim.tap"), "wb") as f:
        subprocess.run(sim_run_command(dmirror, release, thp, sim_traces, cases), check=False,
                       stdout=f, stderr=subprocess.STDOUT)
    r = subprocess.run([dmirror, "compare-traces", kernel_traces, sim_traces, "--format", "json"],
                       check=False, capture_output=True, text=True)
    doc = load_document(r.stdout)
    with open(os.path.join(out, "traces.txt"), "w") as f:
        f.write((render_traces(doc) if doc else r.stdout) + r.stderr)
    if doc is None:
        return (f"traces: not compared (compare-traces gave no JSON, exit {r.returncode}; "
                f"see {out}/traces.txt)")
    with open(json_path, "w") as f:
        f.write(r.stdout)
    return (f"traces: kernel vs simulator (--sim-release {release} --sim-thp {thp}, ABI {abi}) "
            f"compared in {fmt_secs(time.time() - t0)}")


def read_trace_comparison(out):
    """trace_verdicts() of out/traces.json; nothing when the traces were not compared."""
    doc = load_document(read_text(os.path.join(out, "traces.json"), ""))
    return trace_verdicts(doc) if doc else ({}, {})
