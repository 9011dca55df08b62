"""Building the test kernel, test_hmm.ko and hmm-tests, cached by a key of the
package version and the fragment, with a progress line every 30 s."""

import glob
import json
import os
import re
import shutil
import subprocess
import time

from . import kconfig, source
from .common import CACHE, KERNEL_FRAGMENT, REPO, LabError, fmt_secs, path_safe, run, say, sha

STEP_RE = re.compile(rb"^\s+(CC \[M\]|LD \[M\]|CC|AS|LD|AR|HOSTCC|HOSTLD|GEN|OBJCOPY|UPD|SYNC)\s+(\S+)")
# steps of a cold build of the default config, for the progress percentage
# until this machine has measured its own
DEFAULT_STEPS = {"kernel": 1740, "kernel+kasan": 1800}


def build_key(version, kasan, extra="", fragment=KERNEL_FRAGMENT):
    """The cache directory name: the version and a hash of the fragment's options.
    The hashed text must not change, or every cached build is rebuilt."""
    opts = kconfig.fragment_lines(kasan, fragment)
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


def hmm_tests_command(tree, hdr, out):
    """gcc for hmm-tests alone, static, from tools/testing/selftests/mm."""
    mm = os.path.join(tree, "tools", "testing", "selftests", "mm")
    return ["gcc", "-static", "-Wall", "-O2", "-D_GNU_SOURCE=", "-U_FORTIFY_SOURCE",
            "-I", tree, "-isystem", os.path.join(hdr, "include"),
            "-isystem", os.path.join(tree, "tools", "include", "uapi"),
            "-I", os.path.join(tree, "tools", "testing", "selftests"), "-I", mm,
            "-o", out, os.path.join(mm, "hmm-tests.c"), os.path.join(mm, "vm_util.c"),
            os.path.join(mm, "hugepage_settings.c"), "-lrt", "-lpthread", "-lm"]


def build_hmm_tests(tree, hdr, out, log):
    """Build only hmm-tests from tools/testing/selftests/mm, statically."""
    cmd = hmm_tests_command(tree, hdr, out)
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


def build(args):
    """Build (or reuse) kernel + test_hmm.ko + hmm-tests. Returns a dict of paths."""
    if args.kernel or args.modules:
        if not (args.kernel and args.modules):
            raise LabError("--kernel and --modules go together (bzImage and a directory with test_hmm.ko)")
        return prebuilt(args)
    if args.source:
        tree, version = source.local_tree(args.source)
        key = build_key(version + "-src-" + sha(tree)[:8], args.kasan)
    else:
        tree, version = source.fetch_debian_source()
        key = build_key(version, args.kasan)
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
    say(f"build: {source.PACKAGE if not args.source else tree} {version}{' +KASAN' if args.kasan else ''} "
        f"-> {bdir}")
    say(f"build: log in {logpath}")
    t0 = time.time()
    with open(logpath, "wb") as log:
        kconfig.configure(tree, obj, args.kasan, log)
    say(f"build: config ok (tinyconfig + {os.path.relpath(KERNEL_FRAGMENT, REPO)}, every option checked)")
    cc = "ccache gcc" if shutil.which("ccache") else "gcc"
    make_with_progress(["make", f"O={obj}", f"CC={cc}", "-j", jobs(), "bzImage", "modules"],
                       tree, logpath, "kernel" + ("+kasan" if args.kasan else ""), ccache_env())
    with open(logpath, "ab") as log:
        run(["make", "-s", f"O={obj}", "headers"], cwd=tree, stdout=log, stderr=log)
        build_hmm_tests(tree, os.path.join(obj, "usr"), os.path.join(bdir, "hmm-tests"), log)
    shutil.copy(os.path.join(obj, "arch", "x86", "boot", "bzImage"), os.path.join(bdir, "bzImage"))
    shutil.copy(os.path.join(obj, "lib", "test_hmm.ko"), os.path.join(bdir, "test_hmm.ko"))
    shutil.copy(os.path.join(obj, ".config"), os.path.join(bdir, "config"))
    with open(os.path.join(obj, "include", "config", "kernel.release")) as f:
        release = f.read().strip()
    secs = time.time() - t0
    info = {"key": key, "version": version, "release": release, "tree": tree,
            "kasan": args.kasan, "build_seconds": round(secs),
            "bzImage": os.path.join(bdir, "bzImage"), "test_hmm": os.path.join(bdir, "test_hmm.ko"),
            "hmm_tests": os.path.join(bdir, "hmm-tests"), "config": os.path.join(bdir, "config")}
    if not args.source:
        with open(stamp, "w") as f:
            json.dump(info, f, indent=1)
    say(f"build: done in {fmt_secs(secs)} ({release})")
    info["cached"] = False
    return info


def prebuilt(args):
    """--kernel BZIMAGE --modules DIR: the given kernel; hmm-tests still from a tree."""
    kernel = os.path.realpath(args.kernel)
    if not os.path.isfile(kernel):
        raise LabError(f"--kernel {args.kernel}: no such file; pass a bzImage")
    kos = glob.glob(os.path.join(args.modules, "**", "test_hmm.ko"), recursive=True)
    if not kos:
        raise LabError(f"--modules {args.modules}: no test_hmm.ko below it; build with CONFIG_TEST_HMM=m")
    # hmm-tests still comes from a source tree: --source or the Debian package
    if args.source:
        tree, version = os.path.realpath(args.source), "src"
    else:
        tree, version = source.fetch_debian_source()
    hdir = os.path.join(CACHE, "build", "hmm-tests-" + path_safe(version) + "-" + sha(tree)[:8])
    os.makedirs(hdir, exist_ok=True)
    ht = os.path.join(hdir, "hmm-tests")
    if not os.path.exists(ht) or args.source:
        with open(os.path.join(hdir, "build.log"), "wb") as log:
            run(["make", "-s", f"O={hdir}/obj", "headers"], cwd=tree, stdout=log, stderr=log)
            build_hmm_tests(tree, os.path.join(hdir, "obj", "usr"), ht, log)
    return {"key": "prebuilt", "version": version, "release": "prebuilt " + os.path.basename(kernel),
            "tree": tree, "kasan": args.kasan, "bzImage": kernel, "test_hmm": kos[0],
            "hmm_tests": ht, "cached": True}
