"""dmirror lab: build a Linux test kernel with test_hmm, boot it under QEMU,
run the kernel's hmm-tests and `dmirror run --backend kernel` side by side in
the same boot, read the kernel log, and report.

    scripts/lab run --out DIR      build (cached), boot, run both suites, report
    scripts/lab build              only build (or reuse) kernel, test_hmm.ko, hmm-tests
    scripts/lab shell              boot the test kernel with a shell on the console
    scripts/lab deps               install the Debian packages the lab needs
    scripts/lab fetch              only download and unpack the kernel source
    scripts/lab report --out DIR   re-read DIR/guest and print the report again

See scripts/LAB.md. Exit codes: 0 all good, 1 a check failed (disagreement,
new kernel splat, unload failure, ...), 2 the lab could not do its job.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from . import build, deps, dmirror, guest, initramfs, qemu, report, source
from .common import BENCH, LabError, require_data_filter, say


def cmd_deps(args):
    missing = deps.missing_packages()
    if not missing:
        say("deps: everything is installed")
        return 0
    deps.install_packages(missing)
    return 0


def cmd_fetch(args):
    require_data_filter()
    tree, version = source.fetch_debian_source()
    say(f"source: {tree} ({source.PACKAGE} {version})")
    return 0


def cmd_build(args):
    require_data_filter()
    deps.ensure_deps()
    info = build.build(args)
    say(f"build: bzImage {info['bzImage']}")
    say(f"build: test_hmm {info['test_hmm']}")
    say(f"build: hmm-tests {info['hmm_tests']}")
    return 0


def boot_and_run(args, info, dmirror_path, out):
    """One boot that runs both suites; returns (the results directory, timings)."""
    work = os.path.join(out, "guest")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    spm0, spm1, _ = qemu.spm_layout(args.mem)
    config = guest.config_text("run", args.bench, spm0, spm1, args.test_timeout, args.only)
    initrd = os.path.join(out, "initramfs.cpio")
    initramfs.make_initramfs(initrd, info, dmirror_path, config)
    say(f"guest: initramfs {os.path.getsize(initrd) >> 20} MiB; spm_addr_dev0={spm0:#x} "
        f"spm_addr_dev1={spm1:#x}")
    console = os.path.join(out, "console.log")
    results = os.path.join(work, "results.b64")
    for p in (console, results):
        with open(p, "w"):
            pass
    cmd, _, _, append = qemu.qemu_cmd(args, info, initrd,
                                      ["-serial", f"file:{console}", "-serial", f"file:{results}"])
    with open(os.path.join(out, "qemu-cmdline.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n")
    say(f"guest: qemu {'KVM' if args.kvm else 'TCG'}, {args.mem} MiB, cmdline: {append}")
    wall, ev = qemu.boot(cmd, console, os.path.join(out, "qemu.log"), args.timeout)
    res = guest.receive_results(results, work, console)
    timing = {"qemu_wall_s": round(wall, 1), "boot_to_init_s": round(ev.get("init", 0), 1)}
    for s in guest.SUITES:
        if f"{s}-start" in ev and f"{s}-end" in ev:
            timing[f"{s}_wall_s"] = round(ev[f"{s}-end"] - ev[f"{s}-start"], 1)
    return res, timing


def cmd_run(args):
    require_data_filter()
    out = os.path.realpath(args.out)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    deps.ensure_deps()
    info = build.build(args)
    t_build = time.time() - t0
    dmirror_path, dstatus, dok = dmirror.build_dmirror(args, out)
    say(dstatus)
    res, timing = boot_and_run(args, info, dmirror_path, out)
    # the release the guest ran (a prebuilt kernel's is known only there)
    release = guest.kernel_release(res) or info.get("release")
    say(dmirror.compare_traces(out, dmirror_path, release, args.bench))
    timing["lab_total_s"] = round(time.time() - t0, 1)
    timing["build_step_s"] = round(t_build, 1)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump({"info": info, "timing": timing, "dmirror_status": dstatus, "dmirror_ok": dok,
                   "args": {k: v for k, v in vars(args).items() if k != "func"}}, f, indent=1)
    return report.report(out, info, timing, dstatus, dok, args)


def cmd_report(args):
    out = os.path.realpath(args.out)
    run_json = os.path.join(out, "run.json")
    if not os.path.exists(run_json):
        raise LabError(f"{run_json} does not exist; pass the --out DIR of an earlier `scripts/lab run`")
    with open(run_json) as f:
        saved = json.load(f)
    for k in ("thp", "kvm"):
        setattr(args, k, saved["args"].get(k))
    return report.report(out, saved["info"], saved["timing"], saved["dmirror_status"], saved["dmirror_ok"],
                         args)


def cmd_shell(args):
    require_data_filter()
    deps.ensure_deps()
    info = build.build(args)
    out = tempfile.mkdtemp(prefix="dmirror-lab-shell-")
    dmirror_path, status, _ = dmirror.build_dmirror(args, out)
    say(status)
    spm0, spm1, _ = qemu.spm_layout(args.mem)
    config = guest.config_text("shell", False, spm0, spm1, args.test_timeout, None)
    initrd = os.path.join(out, "initramfs.cpio")
    initramfs.make_initramfs(initrd, info, dmirror_path, config)
    cmd, _, _, _ = qemu.qemu_cmd(args, info, initrd, ["-serial", "mon:stdio", "-serial", "null"])
    say("shell: booting; Ctrl-A X quits qemu")
    try:
        return subprocess.call(cmd)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def kernel_options(p):
    g = p.add_argument_group("kernel")
    g.add_argument("--source", metavar="DIR",
                   help="build this kernel tree instead of Debian's linux-source-7.3")
    g.add_argument("--kernel", metavar="BZIMAGE", help="use a prebuilt kernel (with --modules)")
    g.add_argument("--modules", metavar="DIR", help="directory containing the matching test_hmm.ko")
    g.add_argument("--kasan", action="store_true", help="also enable KASAN (separate cache entry)")
    g.add_argument("--rebuild", action="store_true", help="ignore the cached build")


def guest_options(p):
    g = p.add_argument_group("guest")
    g.add_argument("--thp", choices=["always", "madvise", "never"], default="madvise",
                   help="transparent_hugepage= on the guest cmdline (default madvise)")
    g.add_argument("--kvm", action="store_true", help="use KVM (default TCG)")
    g.add_argument("--cpu", help="qemu -cpu model (default max for TCG, host for KVM)")
    g.add_argument("--cpus", type=int, help="guest CPUs (default 2 where the host has them)")
    g.add_argument("--mem", type=int, default=4096,
                   help="guest RAM in MiB, including the 512 MiB reserved for the coherent devices "
                        "(default 4096)")
    g.add_argument("--dmirror", metavar="PATH", help="use this dmirror binary instead of building it")
    g.add_argument("--no-dmirror", action="store_true", help="run only the C suite")
    g.add_argument("--append", action="append", help="extra kernel cmdline argument (repeatable)")
    g.add_argument("--panic-on-oops", action="store_true", help="add oops=panic")
    g.add_argument("--test-timeout", type=int, default=900, help="seconds per case before the lab kills it")


def parser():
    ap = argparse.ArgumentParser(prog="scripts/lab", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="build, boot, run both suites, report")
    kernel_options(p)
    guest_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where the report files go")
    p.add_argument("--bench", action="store_true", help=f"also run {BENCH} (>500 s under TCG)")
    p.add_argument("--only", metavar="REGEX", help="run only cases whose name matches (debugging)")
    p.add_argument("--timeout", type=int, default=75, help="minutes for the whole boot (default 75)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("build", help="build (or reuse) the kernel, test_hmm.ko and hmm-tests")
    kernel_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("shell", help="boot the test kernel with a shell on the console")
    kernel_options(p)
    guest_options(p)
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("deps", help="install the Debian packages the lab needs")
    p.set_defaults(func=cmd_deps)
    p = sub.add_parser("fetch", help="download and unpack linux-source-7.3")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("report", help="print the report of an earlier run again")
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=cmd_report)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except LabError as e:
        print(f"lab: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        sys.exit(130)
