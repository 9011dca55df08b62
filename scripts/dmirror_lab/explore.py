"""--explore: the catalogue's concurrent scenarios on the real driver, each one's
kernel outcomes and kernel splats judged against the simulator's exploration of
the same scenario (same release, same THP mode).

A kernel fault in a scenario ends its boot, as a fault in a case does; the lab
then boots again for the scenarios the fault kept from running, so one oops does
not hide the rest. The pure part (what is left, how a splat is judged) is apart
from the booting, so it can be tested on recorded runs."""

import os
import re
import subprocess

from . import boots as boots_mod
from . import dmirror as dm
from . import splats
from .common import read_text, say
from .extras import STRESS, stale_reads

# The kernel runs read-retry-stress at 1024 pages and the simulator at 64 (see
# Sources/Explore/KernelStress.swift), so its outcomes cannot equal the simulator's:
# what no schedule of the simulator gives, at any size, is a last READ with stale data.
# a splat's first line or a lockdep banner, and the simulator report kind that stands for it
LOCKDEP_KINDS = (("possible recursive locking", "recursive locking"),
                 ("possible circular locking dependency", "circular locking dependency"),
                 ("sleeping function called from invalid context", "sleeping in atomic context"))
RIP = re.compile(r"RIP: (?:\d+:)?([A-Za-z_][\w.]*?)(?:\.constprop\.\d+|\.isra\.\d+|\.part\.\d+)*\+0x")
SIM_RIP = re.compile(r"RIP: ([A-Za-z_]\w*)")


def explore_dir(boot):
    return os.path.join(boot.results, "extra", "explore")


def ran(boot_list):
    """The scenarios some boot finished on the kernel (it wrote NAME.rc)."""
    done = set()
    for b in boot_list:
        d = explore_dir(b)
        if os.path.isdir(d):
            done |= {f[:-len(".rc")] for f in os.listdir(d) if f.endswith(".rc")}
    return done


def faulted(boot_list):
    """The scenarios a boot ended in (a kernel fault or a hang)."""
    out = set()
    for b in boot_list:
        if b.faulted and b.faulted[1].startswith("explore."):
            out.add(b.faulted[1][len("explore."):])
    return out


def pending(names, boot_list):
    """The scenarios still to run, in order: none has run them, and none ended in them.
    Nothing is pending when the last boot was not ended by the kernel (it ran its script
    to the end, or it stopped for a reason another boot would meet again)."""
    if not boot_list or boot_list[-1].ended not in ("fault", "hang"):
        return []
    done = ran(boot_list) | faulted(boot_list)
    return [n for n in names if n not in done]


def more_boots(out, names, repeat, boot_list, run_boots, script):
    """Boots again, with no case of either suite, for the scenarios a kernel fault kept
    from running; returns the new boots. run_boots(dir, extra_files) boots one plan;
    script(names, repeat) is the extra.sh text for those scenarios."""
    added, round_ = [], 0
    while True:
        rest = pending(names, boot_list + added)
        if not rest:
            return added
        round_ += 1
        d = os.path.join(out, f"explore-{round_}")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "extra.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# scripts/lab --explore: the scenarios a kernel fault kept from running\n")
            f.write(script(rest, repeat))
        say(f"explore: a kernel fault ended the boot; a fresh boot runs the {len(rest)} scenario(s) left: "
            + ", ".join(rest))
        new = run_boots(d, [("extra.sh", path)])
        if not new or not (ran(new) | faulted(new)):
            return added + new      # the fresh boot ran none of them: another would fare the same
        added += new


def scenario_splats(boot_list):
    """{scenario: [splats]} of every splat the kernel logged inside an explore scenario's
    markers, in any of the boots."""
    out = {}
    for b in boot_list:
        for s in splats.find_splats(boots_mod.boot_log(b).splitlines()):
            m = re.match(r"dmirror:explore\.(\S+)$", s["test"])
            if m:
                out.setdefault(m.group(1), []).append(s)
    return out


def explains(report, splat):
    """Whether a simulator checker report stands for a kernel splat: the same oops (the
    faulting function in RIP), or lockdep's same complaint."""
    text = splat["text"]
    if report.get("kind") == "kernel oops":
        k, s = RIP.search(text), SIM_RIP.search(report.get("text", ""))
        return bool(k and s and k.group(1) == s.group(1))
    return any(banner in text and report.get("kind") == kind for banner, kind in LOCKDEP_KINDS)


def judge(name, kernel_doc, kernel_splats, sim_doc):
    """One scenario: {"kernel", "repetitions", "sim", "outside", "splats", "explained",
    "unexplained"}. A kernel outcome is outside when no explored schedule gave the same
    lines; a splat is explained when a simulator report of the scenario stands for it."""
    sim = {tuple(o.get("lines") or []) for o in (sim_doc or {}).get("outcomes") or []}
    reports = (sim_doc or {}).get("reports") or []
    kernel = [(o.get("count", 0), tuple(o.get("lines") or []))
              for o in (kernel_doc or {}).get("outcomes") or []]
    if name == STRESS:
        outside = [(n, lines) for n, lines in kernel if stale_reads(lines)]
    else:
        outside = [(n, lines) for n, lines in kernel if lines not in sim]
    explained, unexplained = [], []
    for s in kernel_splats:
        report = next((r for r in reports if explains(r, s)), None)
        (explained if report else unexplained).append((s, report))
    return {"kernel": len(kernel) if kernel_doc else None,
            "repetitions": (kernel_doc or {}).get("schedules"),
            "sim": len(sim), "outside": [{"count": n, "lines": list(lines)} for n, lines in outside],
            "splats": len(kernel_splats),
            "explained": [{"title": s["title"], "sim": (r.get("text") or "").split("\n")[0],
                           "sim_schedules": r.get("count"), "sim_first": r.get("first")}
                          for s, r in explained],
            "unexplained": [s["title"] for s, _ in unexplained]}


# The simulator's search when a kernel outcome is outside its default one (1000 random schedules
# and every schedule with at most 2 preemptions): every schedule with at most 3. oom-reap's
# has 41,896 schedules (75 s on this machine); one kernel outcome needs three preemptions.
DEEPER = ["--random", "0", "--preemptions", "3", "--limit", "200000"]


def simulate(dmirror_path, name, release, thp, deeper=False):
    r = subprocess.run([dmirror_path, "explore", name, "--sim-release", release, "--sim-thp", thp,
                        "--format", "json", *(DEEPER if deeper else [])], check=False, capture_output=True,
                       text=True)
    return dm.load_document(r.stdout)


def merged(a, b):
    """Two explorations' documents as one: their outcomes and reports together."""
    return {"outcomes": ((a or {}).get("outcomes") or []) + ((b or {}).get("outcomes") or []),
            "reports": ((a or {}).get("reports") or []) + ((b or {}).get("reports") or [])}


def report(names, boot_list, dmirror_path, release, thp):
    """Prints each scenario's judgement and the two totals; returns (summary, problems)."""
    if not any(os.path.isdir(explore_dir(b)) for b in boot_list):
        say("explore: the guest did not run the catalogue")
        return None, ["--explore: the guest did not run the catalogue (see kernel.log)"]
    by_scenario = scenario_splats(boot_list)
    result = {}
    say("explore: the catalogue on the kernel, against the simulator's outcome set (same release, THP):")
    for name in names:
        kdoc, rc, err = None, "", ""
        for b in boot_list:
            d = explore_dir(b)
            if any(os.path.exists(os.path.join(d, name + ext)) for ext in (".rc", ".json")):
                kdoc = dm.load_document(read_text(os.path.join(d, name + ".json"), "")) or kdoc
                rc = read_text(os.path.join(d, name + ".rc"), "").strip() or rc
                err = (read_text(os.path.join(d, name + ".err"), "").strip().splitlines() or [err])[-1]
        ksplats = by_scenario.get(name, [])
        if kdoc is None and not ksplats:
            say(f"    {name}: not run on the kernel{f' (exit {rc})' if rc else ''}: {err or 'no output'}")
            result[name] = {"rc": rc, "kernel": None}
            continue
        sdoc = simulate(dmirror_path, name, release, thp)
        j = judge(name, kdoc, ksplats, sdoc)
        deeper = ""
        if (j["outside"] or j["unexplained"]) and name != STRESS:
            # outside the default search is not yet outside the model: search deeper first
            sdoc = merged(sdoc, simulate(dmirror_path, name, release, thp, deeper=True))
            j = judge(name, kdoc, ksplats, sdoc)
            deeper = " (with every schedule of at most 3 preemptions)"
        j["rc"] = rc
        j["deeper"] = bool(deeper)
        result[name] = j
        if kdoc is None:
            head = "the kernel's boot ended in it"
        else:
            head = f"kernel {j['kernel']} distinct outcome(s) in {j['repetitions']} repetitions"
        outside = (f"{len(j['outside'])} ({sum(o['count'] for o in j['outside'])} repetitions)"
                   if j["outside"] else "none")
        if name == STRESS:
            outside += " (1024 pages on the kernel, 64 on the simulator: only a stale last READ counts)"
        say(f"    {name}: {head}, simulator {j['sim']}{deeper}; outside the simulator's set: {outside}")
        for o in j["outside"][:2]:
            say(f"        x{o['count']}: " + " | ".join(o["lines"])[:400])
        for e in j["explained"]:
            say(f"        kernel splat {e['title']!r}: explained, the simulator's {e['sim']!r} in "
                f"{e['sim_schedules']} schedule(s) (first: {e['sim_first']})")
        for t in j["unexplained"]:
            say(f"        kernel splat {t!r}: UNEXPLAINED (no simulator report of this scenario "
                "stands for it)")
    outside = sum(len(j.get("outside") or []) for j in result.values())
    total = sum(j.get("splats") or 0 for j in result.values())
    unexplained = sum(len(j.get("unexplained") or []) for j in result.values())
    say(f"explore: kernel outcomes outside the simulator's set: {outside}; kernel splats: {total}, "
        f"explained by the simulator: {total - unexplained}, unexplained: {unexplained}")
    problems = []
    if outside:
        problems.append(f"--explore: {outside} kernel outcome(s) outside the simulator's outcome set")
    if unexplained:
        problems.append(f"--explore: {unexplained} kernel splat(s) in explore scenarios that no simulator "
                        "report explains")
    not_run = [n for n, j in result.items() if j.get("kernel") is None and not j.get("splats")
               and j.get("rc") != "4"]
    if not_run:
        problems.append("--explore: not run on the kernel: " + ", ".join(not_run))
    return {"scenarios": result, "outside": outside, "splats": total, "unexplained": unexplained}, problems
