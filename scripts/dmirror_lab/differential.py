"""scripts/lab scenario FILES... and scripts/lab fuzz: scenarios on the real driver in
the guest under lockdep, each replayed there on dmirror's simulator configured as the
running kernel (`--against-sim`), compared line by line. A difference is shrunk in the
guest (fuzz) and reported as a scenario file; a splat is attributed to the scenario
that was running, through the kmsg markers dmirror writes around each one.

The boot runs one case of each suite first (SMOKE), as a check that the driver is up;
the scenarios run after it, from the lab's extra.sh."""

import glob
import json
import os
import shlex
import shutil

from .common import LabError, read_text, say

SMOKE = r"^hmm\.hmm_device_private\.open_close$"
# shrinking runs each candidate on the real driver: bounded, or one scenario could take the boot
MAX_SHRINK = 300


def scenario_script(files):
    """extra.sh and the files it needs for `scripts/lab scenario FILES...`."""
    guest_files, names = [], []
    for i, path in enumerate(files):
        if not os.path.isfile(path):
            raise LabError(f"{path}: no such scenario file")
        name = f"scn-{i:03d}-{os.path.basename(path)}"
        guest_files.append((f"scenarios-in/{name}", os.path.realpath(path)))
        names.append(name)
    args = " ".join(shlex.quote(f"/lab/scenarios-in/{n}") for n in names)
    text = ("#!/bin/sh\n# scripts/lab scenario: written by dmirror_lab/differential.py\n"
            f"/lab/dmirror scenario --backend kernel --against-sim --kmsg-markers --format jsonl {args} "
            "> scenario.jsonl 2> scenario.err; echo $? > scenario.rc\n")
    return text, guest_files


def fuzz_script(seed, count, length):
    """extra.sh for `scripts/lab fuzz --seed S --count N`."""
    if count < 1 or length < 1:
        raise LabError("--count and --length must be at least 1")
    return ("#!/bin/sh\n# scripts/lab fuzz: written by dmirror_lab/differential.py\n"
            "mkdir -p fuzz\n"
            f"/lab/dmirror fuzz --backend kernel --against-sim --kmsg-markers --seed {int(seed)} "
            f"--count {int(count)} --length {int(length)} --max-shrink {MAX_SHRINK} --out fuzz "
            "> fuzz.out 2> fuzz.err; echo $? > fuzz.rc\n"), []


def extra_dirs(out):
    """results/extra of each boot, in boot order."""
    return sorted(glob.glob(os.path.join(out, "guest", "boot-*", "results", "extra")),
                  key=lambda p: int(p.split("boot-")[-1].split(os.sep)[0]))


def scenario_differences(jsonl_text):
    """(scenarios run, [(scenario, where)]) from `dmirror scenario --against-sim --format jsonl`."""
    ran, differs = 0, []
    for line in jsonl_text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "lines" in doc and "scenario" in doc:
            ran += 1
        if "against_sim" in doc and "scenario" in doc:
            differs.append((doc["scenario"], doc["against_sim"]))
    return ran, differs


def fuzz_summary(text):
    """The fuzz run's last summary line, the differences it printed and the files it shrank."""
    summary = next((ln for ln in reversed(text.splitlines()) if ln.startswith("# fuzz: ")), None)
    differs = [ln[2:] for ln in text.splitlines()
               if ln.startswith("# fuzz-") and "differs from the simulator" in ln]
    shrunk = [ln for ln in text.splitlines() if ln.startswith("# shrunk ")]
    return summary, differs, shrunk


def report(out, kind):
    """Prints what the guest's scenarios showed; returns 0 (all the same), 1 otherwise."""
    dirs = extra_dirs(out)
    if not dirs:
        say(f"lab {kind}: the guest did not run the scenarios (see kernel.log: a fault before them?)")
        return 1
    d = dirs[-1]
    dest = os.path.join(out, "differences")
    os.makedirs(dest, exist_ok=True)
    if kind == "scenario":
        ran, differs = scenario_differences(read_text(os.path.join(d, "scenario.jsonl"), ""))
        err = read_text(os.path.join(d, "scenario.err"), "").strip()
        say(f"lab scenario: {ran} scenario(s) on the kernel, each replayed on the simulator: "
            f"{ran - len(differs)} the same, {len(differs)} differ")
        for name, where in differs:
            say(f"    {os.path.basename(name)}: {where}")
        if err:
            say("    dmirror: " + err.splitlines()[-1])
        if ran == 0:
            return 1
        return 1 if differs else 0
    text = read_text(os.path.join(d, "fuzz.out"), "")
    summary, differs, shrunk = fuzz_summary(text)
    rc = read_text(os.path.join(d, "fuzz.rc"), "").strip()
    say(f"lab fuzz: {summary[2:] if summary else 'no summary (the run did not finish; see kernel.log)'}")
    for line in differs[:20]:
        say(f"    {line}")
    for line in shrunk:
        say(f"    {line[2:]}")
    for f in sorted(glob.glob(os.path.join(d, "fuzz", "*.scn"))):
        shutil.copy(f, dest)
    if glob.glob(os.path.join(dest, "*.scn")):
        say(f"lab fuzz: shrunk scenarios in {dest}")
    err = read_text(os.path.join(d, "fuzz.err"), "").strip()
    if err:
        say("    dmirror: " + err.splitlines()[-1])
    return 0 if rc == "0" and summary else 1
