"""Building a cell's test kernel, test_hmm.ko and hmm-tests, cached by a key of
the package version and every kernel option, with a progress line every 30 s;
and a mutant's test_hmm.ko alone, against a stock build's objects."""

import glob
import json
import os
import re
import shutil
import subprocess
import time

from . import cells, kconfig, source
from .common import CACHE, KERNEL_FRAGMENT, REPO, LabError, fmt_secs, path_safe, read_text, run, say, sha

STEP_RE = re.compile(rb"^\s+(CC \[M\]|LD \[M\]|CC|AS|LD|AR|HOSTCC|HOSTLD|GEN|OBJCOPY|UPD|SYNC)\s+(\S+)")
# steps of a cold build, for the progress percentage until this machine has measured its own
DEFAULT_STEPS = {"kernel-7.3-lab": 1900, "kernel-7.3-lab+kasan": 1960}


def build_key(version, opts, extra=""):
    """The cache directory name: the version and a hash of every option the kernel
    is built with. The hashed text must not change, or every cached build is rebuilt."""
    h = sha(json.dumps(opts) + extra + "|hmm-tests-static-v1")[:12]
    return path_safe(version) + "-" + h


def count_steps(logpath, step_re=STEP_RE):
    """(make steps so far, the file of the last one) in a build log."""
    steps, last = 0, "-"
    with open(logpath, "rb") as f:
        for line in f:
            m = step_re.match(line)
            if m:
                steps += 1
                last = m.group(2).decode(errors="replace")
    return steps, last


def progress_line(what, secs, steps, total, last):
    pct = f" (~{min(99, 100 * steps // total)}%)" if total else ""
    return f"  [{what}] {fmt_secs(secs)}: {steps} steps{pct}, now {last}"


def make_with_progress(cmd, cwd, logpath, what, env=None):
    """Run make with its output in logpath; print a progress line every 30 s."""
    estimate_file = os.path.join(CACHE, "build-steps.json")
    estimates = {}
    if os.path.exists(estimate_file):
        with open(estimate_file) as f:
            estimates = json.load(f)
    total = estimates.get(what, DEFAULT_STEPS.get(what))
    t0 = time.time()
    with open(logpath, "ab") as log:
        p = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        last_print = t0
        while True:
            try:
                rc = p.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                pass
            if time.time() - last_print >= 30:
                last_print = time.time()
                steps, last = count_steps(logpath)
                say(progress_line(what, time.time() - t0, steps, total, last))
    steps, _ = count_steps(logpath)
    if rc != 0:
        with open(logpath, errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        say("\n".join("    " + line for line in tail))
        raise LabError(f"{what} failed (exit {rc}); the full log is {logpath}")
    if steps > 1000:            # a full build: remember its size for the next percentage
        estimates[what] = steps
        with open(estimate_file, "w") as f:
            json.dump(estimates, f)
    return time.time() - t0


def selftests_dir(tree):
    """Where the tree keeps hmm-tests.c: selftests/mm, or selftests/vm before 6.3."""
    for sub in ("mm", "vm"):
        d = os.path.join(tree, "tools", "testing", "selftests", sub)
        if os.path.exists(os.path.join(d, "hmm-tests.c")):
            return d
    raise LabError(f"{tree} has no tools/testing/selftests/{{mm,vm}}/hmm-tests.c; pass a Linux tree "
                   "that has the HMM selftest")


def harness_filters(tree):
    """Whether the tree's kselftest harness takes -l and -r (the harness of 6.1 runs
    every case, whatever its arguments)."""
    header = os.path.join(tree, "tools", "testing", "selftests", "kselftest_harness.h")
    return "case 'l':" in read_text(header, "") and "case 'r':" in read_text(header, "")


def hmm_tests_sources(mm, read=None):
    """hmm-tests.c and the helpers it needs, found as its Makefile would link them
    but per test: every X.c in mm whose X.h an included file includes, transitively
    (7.3: hugepage_settings.c and vm_util.c; 6.12 and 6.1: none)."""
    read = read or (lambda p: read_text(p, "") if os.path.exists(p) else None)
    todo, out = ["hmm-tests.c"], []
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        text = read(os.path.join(mm, name))
        if text is None:
            continue
        out.append(name)
        for header in re.findall(r'^#include "([A-Za-z0-9_]+)\.h"', text, re.M):
            todo.append(header + ".c")
    return [os.path.join(mm, n) for n in out]


def hmm_tests_command(tree, hdr, out, mm, sources):
    """gcc for hmm-tests alone, static, from the tree's own selftests."""
    return ["gcc", "-static", "-Wall", "-O2", "-D_GNU_SOURCE=", "-U_FORTIFY_SOURCE",
            "-I", tree, "-isystem", os.path.join(hdr, "include"),
            "-isystem", os.path.join(tree, "tools", "include", "uapi"),
            "-I", os.path.join(tree, "tools", "testing", "selftests"), "-I", mm,
            "-o", out, *sources, "-lrt", "-lpthread", "-lm"]


def build_hmm_tests(tree, hdr, out, log):
    """Build only hmm-tests from the tree's selftests, statically."""
    mm = selftests_dir(tree)
    cmd = hmm_tests_command(tree, hdr, out, mm, hmm_tests_sources(mm))
    log.write(("+ " + " ".join(cmd) + "\n").encode())
    log.flush()
    r = subprocess.run(cmd, check=False, stdout=log, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise LabError(f"building hmm-tests failed; see {log.name}")


def jobs():
    return str((os.cpu_count() or 1) + 1)


def ccache_env():
    env = dict(os.environ)
    env.setdefault("CCACHE_DIR", os.path.join(CACHE, "ccache"))
    env.setdefault("CCACHE_MAXSIZE", "5G")
    return env


def kernel_tree(args, cell):
    """(tree, version, label) of the kernel a run builds: --source DIR, else the
    cell's Debian package."""
    if args.source:
        tree, version = source.local_tree(args.source)
        return tree, version, tree
    tree, version = source.fetch_debian_source(cell.kernel)
    return tree, version, cell.kernel.package


def build(args, cell):
    """Build (or reuse) the cell's kernel, test_hmm.ko (TEST_HMM=m) and hmm-tests.
    Returns a dict of paths."""
    if args.kernel or args.modules:
        if not (args.kernel and args.modules):
            raise LabError("--kernel and --modules go together (bzImage and a directory with test_hmm.ko)")
        return prebuilt(args, cell)
    tree, version, label = kernel_tree(args, cell)
    opts = kconfig.cell_options(cell, args.kasan, cells.version_tuple(version))
    key = build_key(version + ("-src-" + sha(tree)[:8] if args.source else ""), opts)
    bdir = os.path.join(CACHE, "build", key)
    stamp = os.path.join(bdir, "stamp.json")
    if os.path.exists(stamp) and not args.source and not args.rebuild:
        with open(stamp) as f:
            info = json.load(f)
        say(f"build: cached {info['release']} ({key})")
        info["cached"] = True
        return info
    os.makedirs(bdir, exist_ok=True)
    obj = os.path.join(bdir, "obj")
    os.makedirs(obj, exist_ok=True)
    logpath = os.path.join(bdir, "build.log")
    say(f"build: {label} {version} (profile {cell.profile.name}, TEST_HMM={cell.test_hmm}"
        f"{', KASAN' if args.kasan else ''}) -> {bdir}")
    say(f"build: log in {logpath}")
    fragments = [os.path.relpath(KERNEL_FRAGMENT, REPO)]
    if cell.profile.fragment:
        fragments.append("scripts/" + cell.profile.fragment)
    t0 = time.time()
    with open(logpath, "wb") as log:
        kconfig.configure(tree, obj, opts, log, fragments)
    say(f"build: config ok (tinyconfig + {' + '.join(fragments)}, every option checked)")
    what = f"kernel-{cell.kernel.name}-{cell.profile.name}" + ("+kasan" if args.kasan else "")
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    make_with_progress(["make", f"O={obj}", f"CC={cc}", "-j", jobs(), "bzImage", "modules"],
                       tree, logpath, what, ccache_env())
    with open(logpath, "ab") as log:
        run(["make", "-s", f"O={obj}", "headers"], cwd=tree, stdout=log, stderr=log)
        build_hmm_tests(tree, os.path.join(obj, "usr"), os.path.join(bdir, "hmm-tests"), log)
    shutil.copy(os.path.join(obj, "arch", "x86", "boot", "bzImage"), os.path.join(bdir, "bzImage"))
    module = None
    if cell.test_hmm == "m":
        module = os.path.join(bdir, "test_hmm.ko")
        shutil.copy(os.path.join(obj, "lib", "test_hmm.ko"), module)
    shutil.copy(os.path.join(obj, ".config"), os.path.join(bdir, "config"))
    with open(os.path.join(obj, "include", "config", "kernel.release")) as f:
        release = f.read().strip()
    secs = time.time() - t0
    info = {"key": key, "version": version, "release": release, "tree": tree, "obj": obj,
            "kasan": args.kasan, "build_seconds": round(secs), "test_hmm_config": cell.test_hmm,
            "bzImage": os.path.join(bdir, "bzImage"), "test_hmm": module,
            "hmm_tests": os.path.join(bdir, "hmm-tests"), "config": os.path.join(bdir, "config")}
    if not args.source:
        with open(stamp, "w") as f:
            json.dump(info, f, indent=1)
    say(f"build: done in {fmt_secs(secs)} ({release})")
    info["cached"] = False
    return info


def module_build(info, moddir, log):
    """test_hmm.ko from the test_hmm.c in moddir, built as an external module against
    the stock build's objects (its config, headers and Module.symvers): a mutant costs
    one module, not a kernel. Returns the .ko path."""
    with open(os.path.join(moddir, "Kbuild"), "w") as f:
        f.write("obj-m := test_hmm.o\n")
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    cmd = ["make", f"O={info['obj']}", f"M={moddir}", f"CC={cc}", "-j", jobs(), "modules"]
    log.write(("+ " + " ".join(cmd) + "\n").encode())
    log.flush()
    r = subprocess.run(cmd, cwd=info["tree"], check=False, stdout=log, stderr=subprocess.STDOUT,
                       env=ccache_env())
    ko = os.path.join(moddir, "test_hmm.ko")
    if r.returncode != 0 or not os.path.exists(ko):
        raise LabError(f"building test_hmm.ko in {moddir} failed (exit {r.returncode}); see {log.name}")
    return ko


def prebuilt(args, cell):
    """--kernel BZIMAGE --modules DIR: the given kernel; hmm-tests still from a tree."""
    kernel = os.path.realpath(args.kernel)
    if not os.path.isfile(kernel):
        raise LabError(f"--kernel {args.kernel}: no such file; pass a bzImage")
    kos = glob.glob(os.path.join(args.modules, "**", "test_hmm.ko"), recursive=True)
    if not kos:
        raise LabError(f"--modules {args.modules}: no test_hmm.ko below it; build with CONFIG_TEST_HMM=m")
    # hmm-tests still comes from a source tree: --source or the cell's Debian package
    if args.source:
        tree, version = os.path.realpath(args.source), "src"
    else:
        tree, version = source.fetch_debian_source(cell.kernel)
    hdir = os.path.join(CACHE, "build", "hmm-tests-" + path_safe(version) + "-" + sha(tree)[:8])
    os.makedirs(hdir, exist_ok=True)
    ht = os.path.join(hdir, "hmm-tests")
    if not os.path.exists(ht) or args.source:
        with open(os.path.join(hdir, "build.log"), "wb") as log:
            run(["make", "-s", f"O={hdir}/obj", "headers"], cwd=tree, stdout=log, stderr=log)
            build_hmm_tests(tree, os.path.join(hdir, "obj", "usr"), ht, log)
    return {"key": "prebuilt", "version": version, "release": "prebuilt " + os.path.basename(kernel),
            "tree": tree, "kasan": args.kasan, "bzImage": kernel, "test_hmm": kos[0],
            "test_hmm_config": "m", "hmm_tests": ht, "cached": True}
