"""`scripts/lab mutants`: injected bugs, each a small patch to the 7.3 tree in
scripts/mutants/ (its header says what it breaks). Each is applied to a copy of
the tree; only test_hmm.ko changes (TEST_HMM=m), so it is built as an external
module against the stock build's objects, then the stock cell and the mutant
run in full and compare says what changed. Every mutant must be caught: by a
splat attributed to a case, a verdict or trace change, a kernel fault or hang,
or a failed unload. One that is not is a hole in the oracle."""

import copy
import glob
import json
import os
import re
import shutil
import subprocess

from . import build, cells, compare, deps, dmirror, runner
from .common import CACHE, SCRIPTS, LabError, fmt_secs, read_text, say

MUTANTS = os.path.join(SCRIPTS, "mutants")
STOCK_CELL = "7.3-madvise"
# repetitions of read-retry-stress in every run of `mutants` (0.2-0.5 s each under TCG; the
# mutant c-no-read-retry left stale data in 2 of 1000, the stock driver in none)
MUTANT_STRESS = 1000


def patches(names=None):
    """{name: path} of scripts/mutants/*.patch (name: the file name without .patch)."""
    found = {os.path.basename(p)[:-len(".patch")]: p
             for p in sorted(glob.glob(os.path.join(MUTANTS, "*.patch")))}
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        bad = [n for n in wanted if n not in found]
        if bad:
            raise LabError(f"no mutant {', '.join(bad)} in scripts/mutants; "
                           f"the mutants are {', '.join(found)}")
        found = {n: found[n] for n in wanted}
    return found


def header(text):
    """(title, the header's text) of a patch: what comes before its first ---/diff line."""
    head = []
    for line in text.splitlines():
        if line.startswith(("--- ", "diff ")):
            break
        head.append(line)
    body = "\n".join(head).strip()
    first = (body.splitlines() or ["?"])[0]
    # "Mutant (a), for `scripts/lab mutants`: recursive mmap_read_lock." -> what comes after
    return first.split(": ", 1)[-1].rstrip("."), body


def touched(text):
    """The files a unified diff changes (its +++ lines, without the b/ prefix)."""
    return sorted({re.sub(r"^b/", "", line[4:].split("\t")[0].strip())
                   for line in text.splitlines() if line.startswith("+++ ")})


def module_only(files):
    """Whether a patch touches only test_hmm's own files, so a module build is enough."""
    return bool(files) and all(re.fullmatch(r"lib/test_hmm(_uapi)?\.[ch]", f) for f in files)


def build_mutant(name, patch, info, log_dir):
    """test_hmm.ko with the patch: the stock tree copied (hard links, cheap), the
    touched files un-shared and patched, then a module build against info's objects."""
    text = read_text(patch)
    files = touched(text)
    if not module_only(files):
        raise LabError(f"mutant {name} changes {', '.join(files) or 'nothing'}; a mutant may change only "
                       "lib/test_hmm.c and lib/test_hmm_uapi.h (it is built as test_hmm.ko alone)")
    work = os.path.join(CACHE, "mutants", name)
    shutil.rmtree(work, ignore_errors=True)
    tree = os.path.join(work, "tree")
    os.makedirs(work)
    subprocess.run(["cp", "-al", info["tree"], tree], check=True)
    for f in files:                      # a patched file must not change the stock tree through its link
        p = os.path.join(tree, f)
        data = read_bytes(p)
        os.unlink(p)
        with open(p, "wb") as fh:
            fh.write(data)
    log_path = os.path.join(log_dir, "build.log")
    with open(log_path, "wb") as log:
        r = subprocess.run(["patch", "-p1", "--no-backup-if-mismatch", "-i", patch], cwd=tree,
                           stdout=log, stderr=subprocess.STDOUT, check=False)
        if r.returncode != 0:
            raise LabError(f"scripts/mutants/{name}.patch does not apply to {info['tree']}; see {log_path}")
        moddir = os.path.join(work, "module")
        os.makedirs(moddir)
        for f in ("test_hmm.c", "test_hmm_uapi.h"):
            shutil.copy(os.path.join(tree, "lib", f), os.path.join(moddir, f))
        return build.module_build(info, moddir, log)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def detection(doc, summary, stock):
    """How the lab saw a mutant, from compare's document (stock vs mutant) and the
    two runs' summaries: a list of (way, evidence) lines; empty when it did not.
    Known splats (the coherent devices' memremap warnings) that only change in
    number are not evidence: how often they fire follows device memory use."""
    ways = []
    for s in doc["splats"]:
        if s["with"] > s["base"] and not s["known"]:
            ways.append(("splat", f"{s['case']}: {s['splat']} (x{s['with'] - s['base']})"))
    crashes = [v for v in doc["verdicts"] if v["after"] == "crash"]
    for v in crashes:
        ways.append(("fault or hang", f"{v['suite']}:{v['case']}"))
    for v in doc["verdicts"]:
        if v["after"] != "crash":
            ways.append(("verdict", f"{v['suite']}:{v['case']} {v['before']} -> {v['after']}"))
    for case, diffs in doc["commands"].items():
        d = diffs[0]
        more = f" (+{len(diffs) - 1} more)" if len(diffs) > 1 else ""
        ways.append(("trace", f"{case} #{d['index']} `{d['command']}` {', '.join(d['fields'])}: "
                              f"{d['before']} -> {d['after']}{more}"))
    if doc["unload"]["with"] != doc["unload"]["base"]:
        ways.append(("unload", f"rmmod: stock {doc['unload']['base']}, mutant {doc['unload']['with']}"))
    mine, theirs = summary.get("stress") or {}, stock.get("stress") or {}
    if mine.get("stale") and not theirs.get("stale"):
        ways.append(("stress", f"read-retry-stress: stale device data in {mine['stale']} of "
                               f"{mine['repeats']} repetitions (stock: 0 of {theirs.get('repeats')}); "
                               f"first: {mine['example']}"))
    sim = (summary.get("traces") or {}).get("differs", 0) - (stock.get("traces") or {}).get("differs", 0)
    if sim > 0:
        ways.append(("simulator", f"{sim} more case(s) whose kernel trace differs from the simulator's"))
    return ways


def summary_table(rows):
    lines = ["| mutant | what it breaks | caught | how |", "|---|---|---|---|"]
    for r in rows:
        kinds = sorted({w for w, _ in r["ways"]})
        lines.append(f"| {r['name']} | {r['title']} | {'yes' if r['ways'] else '**NO**'} | "
                     f"{', '.join(kinds) if kinds else 'not caught: a hole in the oracle'} |")
    return lines


def markdown(rows):
    lines = ["# Injected bugs (scripts/mutants) against stock " + STOCK_CELL, ""] + summary_table(rows)
    for r in rows:
        lines += ["", f"## {r['name']}", "", r["header"], ""]
        if r["ways"]:
            lines += [f"- {w}: {e}" for w, e in r["ways"][:40]]
            if len(r["ways"]) > 40:
                lines.append(f"- ... {len(r['ways']) - 40} more (see {r['out']}/compare.md)")
        else:
            lines.append("NOT CAUGHT: no splat, verdict, trace or unload changed.")
    return "\n".join(lines) + "\n"


def stock(args):
    cell = cells.cell(STOCK_CELL)
    if cell.test_hmm != "m":
        raise LabError(f"{STOCK_CELL} must build test_hmm as a module for mutants")
    deps.ensure_deps()
    a = copy.copy(args)
    a.source = None
    return cell, build.build(a, cell)


def run_one(args, cell, out):
    """`scripts/lab run --mutant NAME`: one cell with a mutant's test_hmm.ko (to
    reproduce a mutant's finding alone)."""
    if cell.name != STOCK_CELL:
        raise LabError(f"mutants are patches to {STOCK_CELL}'s tree; drop --cell or pass --cell {STOCK_CELL}")
    name = args.mutant
    patch = patches(name)[name]
    cell, info = stock(args)
    os.makedirs(out, exist_ok=True)
    ko = build_mutant(name, patch, info, out)
    return runner.run_cell(args, cell, out, info={**info, "test_hmm": ko, "key": info["key"] + "+" + name},
                           label=f"{cell.name} + {name}")[0]


def run_all(args, out):
    """Stock once, then every mutant; writes and prints out/mutants.md. Exit status
    0 when every mutant was caught."""
    found = patches(args.mutants)
    os.makedirs(out, exist_ok=True)
    if not getattr(args, "stress", None):
        # the kernel-side concurrent check that catches a commit without read_retry
        args.stress = MUTANT_STRESS
    cell, info = stock(args)
    dmirror_path, dstatus, _ = dmirror.build_dmirror(args, out)
    stock_out = os.path.join(out, "stock")
    _, stock_summary = runner.run_cell(args, cell, stock_out, info=info, dmirror_path=dmirror_path,
                                       dstatus=dstatus)
    rows = []
    for name, patch in found.items():
        mout = os.path.join(out, name)
        os.makedirs(mout, exist_ok=True)
        title, head = header(read_text(patch))
        say(f"== mutant {name}: {title}")
        ko = build_mutant(name, patch, info, mout)
        margs = copy.copy(args)
        margs.mutant = name
        status, summary = runner.run_cell(margs, cell, mout, info={**info, "test_hmm": ko,
                                                                   "key": info["key"] + "+" + name},
                                          label=f"{cell.name} + {name}", dmirror_path=dmirror_path,
                                          dstatus=dstatus)
        doc = compare.document(stock_out, mout)
        compare.write(doc, mout)
        rows.append({"name": name, "title": title, "header": head,
                     "ways": detection(doc, summary, stock_summary),
                     "out": mout, "lab_s": (summary.get("times") or {}).get("lab_s")})
        write(out, rows)
    say("")
    write(out, rows)
    for line in summary_table(rows):
        say(line)
    total = sum(r["lab_s"] or 0 for r in rows)
    say(f"mutants: {len(rows)} run in {fmt_secs(total)}; {out}/mutants.md")
    missed = [r["name"] for r in rows if not r["ways"]]
    for m in missed:
        say(f"lab: FAIL: mutant {m} was not caught: a hole in the oracle (see {out}/mutants.md)")
    return 1 if missed else 0


def write(out, rows):
    text = markdown(rows)
    with open(os.path.join(out, "mutants.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "mutants.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return text
