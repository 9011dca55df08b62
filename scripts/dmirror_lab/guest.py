"""The guest protocol, as scripts/lab-guest-init.sh speaks it: /lab/config in,
a base64 gzipped tarball of /tmp/results out over the second serial port, and
the results directory it holds (per-case outputs, SUITE.rc, notes)."""

import base64
import binascii
import gzip
import io
import os
import re
import tarfile

from . import dmirror, tap
from .common import BENCH, LabError, read_text, require_data_filter

RESULTS_BEGIN = "===DMIRROR-LAB-RESULTS-BEGIN==="
RESULTS_END = "===DMIRROR-LAB-RESULTS-END==="
SUITES = ("kselftest", "dmirror")


def config_text(mode, bench, spm0, spm1, test_timeout, only):
    """/lab/config, which /init sources."""
    return (f"LAB_MODE={mode}\nLAB_BENCH={1 if bench else 0}\nLAB_SPM0={spm0:#x}\n"
            f"LAB_SPM1={spm1:#x}\nLAB_TEST_TIMEOUT={test_timeout}\n"
            f"LAB_ONLY='{only or ''}'\n")


def results_blob(text):
    """The gzipped tar between the marker lines of what the guest sent, or None."""
    m = re.search(re.escape(RESULTS_BEGIN) + "(.*?)" + re.escape(RESULTS_END), text, re.S)
    if not m:
        return None
    try:
        return gzip.decompress(base64.b64decode(re.sub(r"\s+", "", m.group(1))))
    except (binascii.Error, OSError, EOFError) as e:
        raise LabError(f"the guest's results arrived damaged ({e}); run again") from None


def unpack_results(blob, work):
    """The tarball into work (it holds results/), through tarfile's "data" filter."""
    require_data_filter()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
        tf.extractall(work, filter="data")
    return os.path.join(work, "results")


def receive_results(results_file, work, console):
    """Unpack what the guest sent over ttyS1 into work; returns work/results."""
    blob = results_blob(read_text(results_file))
    if blob is None:
        raise LabError(f"the guest sent no results (crash or panic?); read {console}")
    return unpack_results(blob, work)


def read_rc(path):
    """({case: {rc, t0, t1}}, run order) from a SUITE.rc (`name rc t0 t1` lines)."""
    rows = {}
    order = []
    if not os.path.exists(path):
        return rows, order
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                rows[parts[0]] = {"rc": parts[1], "t0": float(parts[2]), "t1": float(parts[3])}
                order.append(parts[0])
    return rows, order


def case_verdict(res, suite, name):
    """(verdict, detail) of one case: the C suite's from its TAP output, dmirror's
    from its JSON document."""
    if suite == "dmirror":
        return dmirror.case_verdict(os.path.join(res, suite, f"{name}.json"), name)
    path = os.path.join(res, suite, f"{name}.out")
    if not os.path.exists(path):
        return "error", "no output"
    return tap.parse_case_output(read_text(path), name)


def suite_results(res, suite):
    """({case: {verdict, detail, secs, rc}}, run order) of one suite."""
    rcs, order = read_rc(os.path.join(res, f"{suite}.rc"))
    out = {}
    for name in order:
        r = rcs[name]
        if r["rc"] == "notrun":
            bench = name.endswith("." + BENCH)
            why = f"{BENCH} runs only with --bench" if bench else "filtered out by --only"
            out[name] = {"verdict": "not run", "detail": why, "secs": 0}
            continue
        v, d = case_verdict(res, suite, name)
        if v == "error" and r["rc"] == "137":
            d = "killed by the lab's per-case timeout"
        if v == "error" and r["rc"] not in ("0", "1", "4"):
            d += f" (exit {r['rc']})"
        out[name] = {"verdict": v, "detail": d, "secs": r["t1"] - r["t0"], "rc": r["rc"]}
    return out, order


def case_body(res, suite, name):
    """One case's TAP lines for the report's SUITE.tap: the C suite's output as
    it printed it, dmirror's rendered from its JSON document."""
    if suite == "dmirror":
        base = os.path.join(res, suite, name)
        return dmirror.case_tap_lines(read_text(base + ".json", ""), read_text(base + ".err", ""), name)
    return read_text(os.path.join(res, suite, f"{name}.out"), "").splitlines()


def kernel_release(res):
    """`uname -r` of the guest, from env.txt's `uname: ` line (uname -a), or None."""
    for line in read_text(os.path.join(res, "env.txt"), "").splitlines():
        if line.startswith("uname: "):
            words = line.split()
            if len(words) >= 4:
                return words[3]
    return None
