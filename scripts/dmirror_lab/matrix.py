"""`scripts/lab matrix`: several cells, one after another (one guest at a time),
then one table with a row per cell."""

import json
import os

from . import runner
from .common import LabError, fmt_secs, say

COLUMNS = ("cell", "release", "C pass/fail/skip/crash", "dmirror pass/fail/skip/crash", "disagree",
           "traces same/differ", "splats new/known", "unload", "C s", "dmirror s", "ratio", "boots", "lab")


def verdict_counts(c):
    if not c:
        return "-"
    return f"{c['pass']}/{c['fail'] + c['error']}/{c['skip']}/{c['crash']}"


def ratio_text(times):
    """dmirror / C: of the walls when both suites ran the same cases, else of the cases
    both ran, summed case by case (marked "cases")."""
    if times.get("same_cases", True):
        return str(times.get("ratio") or "-")
    r = times.get("ratio_common")
    return f"{r} ({times.get('common_cases')} cases)" if r else "-"


def row(summary, status):
    """One table row (a tuple of strings, in COLUMNS order) of a cell's summary.json."""
    t = summary.get("traces") or {}
    times = summary.get("times") or {}
    other = {k: v for k, v in t.items() if k not in ("same", "differs")}
    traces = f"{t.get('same', 0)}/{t.get('differs', 0)}" if t else "-"
    in_findings = len(summary.get("traces_differ_in_findings") or [])
    if in_findings:
        traces += f" ({in_findings} in findings)"
    if other:
        traces += " (" + ", ".join(f"{v} {k}" for k, v in sorted(other.items())) + ")"
    sp = summary.get("splats") or {}
    return (summary.get("cell", "?"), summary.get("release") or "?",
            verdict_counts(summary.get("kselftest")), verdict_counts(summary.get("dmirror")),
            str(len(summary.get("disagree") or [])), traces, f"{sp.get('new', 0)}/{sp.get('known', 0)}",
            summary.get("unload") or "?", str(times.get("kselftest_s") or "-"),
            str(times.get("dmirror_s") or "-"), ratio_text(times),
            str(summary.get("boots", "?")),
            "OK" if status == 0 else "FAIL")


def table(rows):
    """A markdown table of the rows."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def run_matrix(args, cell_list, out):
    """Runs every cell into out/<cell>; prints and writes the table (matrix.md,
    matrix.json). A cell the lab could not run at all (exit 2) is a row of its
    own and the matrix goes on. Exit status: 0 if every cell is OK."""
    os.makedirs(out, exist_ok=True)
    rows, worst, doc = [], 0, []
    for cell in cell_list:
        cell_out = os.path.join(out, cell.name)
        try:
            status, summary = runner.run_cell(args, cell, cell_out)
        except LabError as e:
            say(f"lab: error: {cell.name}: {e}")
            status, summary = 2, {"cell": cell.name, "problems": [str(e)]}
        worst = max(worst, status)
        rows.append(row(summary, status))
        doc.append({"status": status, **summary})
        write(out, rows, doc)
    say("")
    for line in table(rows):
        say(line)
    total = sum((d.get("times") or {}).get("lab_s") or 0 for d in doc)
    say(f"matrix: {len(rows)} cells in {fmt_secs(total)}; {out}/matrix.md")
    return min(worst, 2)


def write(out, rows, doc):
    with open(os.path.join(out, "matrix.md"), "w") as f:
        f.write("\n".join(table(rows)) + "\n")
    with open(os.path.join(out, "matrix.json"), "w") as f:
        json.dump(doc, f, indent=1)
