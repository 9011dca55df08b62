"""`scripts/lab compare`: two kernels (two cells, or a cell and the same cell
built from --source DIR) run in full, then one document of what changed: the
cases whose verdict changed, the commands whose result changed (from the two
kernels' dmirror traces), the splats only one side logged, and each suite's
time."""

import copy
import json
import os

from . import cells, runner, traces
from .common import read_text, say


def splat_keys(summary):
    """{(case as suite:name, splat title | message): count} of a run's splats."""
    out = {}
    for s in summary.get("splat_list") or []:
        if s.get("after_fault"):        # a case that ran again in a fresh boot
            continue
        key = (s["test"], s["title"] + (" | " + s["message"] if s["message"] else ""))
        out[key] = out.get(key, 0) + 1
    return out


def one_side_splats(base, other):
    """[(case, splat, count in base, count in other, first lines, known)] for every
    splat whose count differs between the two runs; splats known-splats.tsv does not
    expect first."""
    a, b = splat_keys(base), splat_keys(other)
    heads, known = {}, {}
    for s in (base.get("splat_list") or []) + (other.get("splat_list") or []):
        key = (s["test"], s["title"] + (" | " + s["message"] if s["message"] else ""))
        heads.setdefault(key, s["head"])
        known[key] = known.get(key, False) or s["known"]
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, 0) != b.get(k, 0)]
    keys.sort(key=lambda k: known[k])
    return [(case, title, a.get((case, title), 0), b.get((case, title), 0), heads[(case, title)],
             known[(case, title)]) for case, title in keys]


def verdict_changes(base, other):
    """[(suite, case, before, after)] of every case whose verdict differs; "-" where
    a side lacks the case."""
    out = []
    for suite in ("kselftest", "dmirror"):
        va, vb = (base.get("verdicts") or {}).get(suite, {}), (other.get("verdicts") or {}).get(suite, {})
        for case in list(va) + [c for c in vb if c not in va]:
            before, after = va.get(case, "-"), vb.get(case, "-")
            if before != after:
                out.append((suite, case, before, after))
    return out


def nondeterministic(out):
    """The cases compare-traces does not compare (they race by design), from a run's traces.json."""
    doc = json.loads(read_text(os.path.join(out, "traces.json"), "{}") or "{}")
    return {c.get("name") for c in doc.get("cases") or [] if c.get("verdict") == "nondeterministic"}


def document(base_dir, other_dir):
    """The comparison as a dict (compare.json)."""
    base, other = runner.load_summary(base_dir), runner.load_summary(other_dir)
    nondet = nondeterministic(base_dir) | nondeterministic(other_dir)
    changed, only_a, only_b = traces.compare_dirs(os.path.join(base_dir, "dmirror-traces"),
                                                  os.path.join(other_dir, "dmirror-traces"), nondet)
    return {
        "base": {k: base.get(k) for k in ("cell", "release", "thp", "test_hmm", "profile")},
        "with": {k: other.get(k) for k in ("cell", "release", "thp", "test_hmm", "profile")},
        "verdicts": [dict(zip(("suite", "case", "before", "after"), v, strict=True))
                     for v in verdict_changes(base, other)],
        "commands": {case: diffs for case, diffs in changed.items()}, "not_compared": sorted(nondet),
        "traces_only_in_base": only_a, "traces_only_in_with": only_b,
        "splats": [dict(zip(("case", "splat", "base", "with", "head", "known"), s, strict=True))
                   for s in one_side_splats(base, other)],
        "times": {"base": base.get("times"), "with": other.get("times")},
        "unload": {"base": base.get("unload"), "with": other.get("unload")},
    }


def markdown(doc):
    """compare.md: the document a person reads."""
    b, w = doc["base"], doc["with"]
    lines = [f"# {b['cell']} ({b['release']}) vs {w['cell']} ({w['release']})", ""]
    lines += ["## Cases whose verdict changed", ""]
    if doc["verdicts"]:
        lines += ["| suite | case | before | after |", "|---|---|---|---|"]
        lines += [f"| {v['suite']} | {v['case']} | {v['before']} | {v['after']} |" for v in doc["verdicts"]]
    else:
        lines.append("None.")
    lines += ["", "## Commands whose result changed (dmirror's traces, kernel against kernel)", ""]
    if doc["commands"]:
        lines += ["| case | command | changed | before | after |", "|---|---|---|---|---|"]
        for case, diffs in doc["commands"].items():
            for d in diffs:
                lines.append(f"| {case} | #{d['index']} `{d['command']}` | {', '.join(d['fields'])} | "
                             f"`{d['before']}` | `{d['after']}` |")
    else:
        lines.append("None.")
    if doc.get("not_compared"):
        lines += ["", "Not compared (they race by design): " + ", ".join(doc["not_compared"])]
    for side, key in (("base", "traces_only_in_base"), ("with", "traces_only_in_with")):
        if doc[key]:
            lines += ["", f"Traced only in {side}: " + ", ".join(doc[key])]
    lines += ["", "## Splats on one side only", ""]
    if doc["splats"]:
        for s in doc["splats"]:
            lines.append(f"- {s['case']}: {s['splat']} (base x{s['base']}, with x{s['with']})"
                         f"{' [known]' if s['known'] else ' [NEW]'}")
            if not s["known"]:
                lines += ["      " + x for x in s["head"][:4]]
    else:
        lines.append("None.")
    tb, tw = doc["times"]["base"] or {}, doc["times"]["with"] or {}
    lines += ["", "## Time in the guest", "", "| | C suite | dmirror | ratio |", "|---|---|---|---|",
              f"| base | {tb.get('kselftest_s')} s | {tb.get('dmirror_s')} s | {tb.get('ratio')} |",
              f"| with | {tw.get('kselftest_s')} s | {tw.get('dmirror_s')} s | {tw.get('ratio')} |",
              "", f"Unload: base {doc['unload']['base']}, with {doc['unload']['with']}."]
    return "\n".join(lines) + "\n"


def write(doc, out):
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(doc, f, indent=1)
    text = markdown(doc)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(text)
    return text


def run_compare(args, out):
    """Runs --base and --with (or --base on --source DIR) into out/base and out/with,
    then writes and prints out/compare.md. Exit status: the worse of the two runs'."""
    os.makedirs(out, exist_ok=True)
    base_cell = cells.cell(args.base)
    base_args = copy.copy(args)
    base_args.source, base_args.mutant = None, None
    s1, _ = runner.run_cell(base_args, base_cell, os.path.join(out, "base"))
    with_out = os.path.join(out, "with")
    if args.mutant:
        from . import mutants
        with_args = copy.copy(args)
        with_args.source = None
        s2 = mutants.run_one(with_args, cells.cell(args.with_cell or args.base), with_out)
    elif args.source:
        s2, _ = runner.run_cell(args, base_cell, with_out)
    else:
        s2, _ = runner.run_cell(base_args, cells.cell(args.with_cell), with_out)
    text = write(document(os.path.join(out, "base"), os.path.join(out, "with")), out)
    say("")
    say(text.rstrip())
    say(f"compare: {out}/compare.md")
    return max(s1, s2)
