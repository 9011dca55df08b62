"""dmirror lab: build a Linux test kernel with test_hmm, boot it under QEMU,
run the kernel's hmm-tests and `dmirror run --backend kernel` side by side in
the same boot, read the kernel log, and report; across kernels and
configurations (cells), between two kernels, and against injected bugs.

    scripts/lab run [--cell NAME] --out DIR      one cell (default 7.3-madvise)
    scripts/lab matrix [--cells A,B,...] --out DIR   several cells, one table
    scripts/lab compare --base CELL --with CELL|--source DIR --out DIR
    scripts/lab mutants --out DIR                 injected bugs, each against stock 7.3
    scripts/lab scenario FILE... --out DIR        scenarios on the real driver, each against the simulator
    scripts/lab fuzz --seed S --count N --out DIR random scenarios the same way, differences shrunk
    scripts/lab cells                             the cells
    scripts/lab build [--cell NAME]               only build (or reuse) kernel, test_hmm.ko, hmm-tests
    scripts/lab shell [--cell NAME]               boot the test kernel with a shell on the console
    scripts/lab deps                              install the Debian packages the lab needs
    scripts/lab fetch [--cell NAME]               only download and unpack the kernel source
    scripts/lab report --out DIR                  print an earlier run's report again

See scripts/LAB.md. Exit codes: 0 all good, 1 a check failed (disagreement,
new kernel splat, unload failure, mutant not caught, ...), 2 the lab could
not do its job.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from . import build, cells, deps, dmirror, guest, initramfs, qemu, runner, source
from .common import BENCH, LabError, say


def cmd_deps(args):
    missing = deps.missing_packages()
    if not missing:
        say("deps: everything is installed")
        return 0
    deps.install_packages(missing)
    return 0


def cmd_cells(args):
    for name in cells.MATRIX_ORDER:
        c = cells.CELLS[name]
        p = c.profile
        say(f"{name:14} {c.kernel.package} ({c.kernel.suite}), profile {p.name}, THP {c.thp}, "
            f"TEST_HMM={c.test_hmm}, {p.cpus} CPUs, {p.mem_mib} MiB"
            f"{', NUMA ' + '+'.join(str(n) for n in p.numa_mib) if p.numa_mib else ''}"
            f"{', ' + ' '.join(p.append) if p.append else ''}")
    return 0


def cmd_fetch(args):
    tree, version = source.fetch_debian_source(cells.cell(args.cell).kernel)
    say(f"source: {tree} ({version})")
    return 0


def cmd_build(args):
    deps.ensure_deps()
    info = build.build(args, cells.cell(args.cell))
    say(f"build: bzImage {info['bzImage']}")
    say(f"build: test_hmm {info['test_hmm'] or 'built in'}")
    say(f"build: hmm-tests {info['hmm_tests']}")
    return 0


def cmd_run(args):
    cell = cells.cell(args.cell)
    out = os.path.realpath(args.out)
    if args.mutant:
        from . import mutants
        return mutants.run_one(args, cell, out)
    return runner.run_cell(args, cell, out)[0]


def cmd_matrix(args):
    from . import matrix
    return matrix.run_matrix(args, cells.cell_list(args.cells or ",".join(cells.MATRIX_ORDER)),
                             os.path.realpath(args.out))


def cmd_compare(args):
    from . import compare
    if args.mutant and args.source:
        raise LabError("a mutant is a patch to the stock tree: drop --source, or --mutant")
    if bool(args.with_cell) == bool(args.source) and not args.mutant:
        raise LabError("compare needs exactly one of --with CELL and --source DIR (or --mutant NAME)")
    return compare.run_compare(args, os.path.realpath(args.out))


def cmd_mutants(args):
    from . import mutants
    return mutants.run_all(args, os.path.realpath(args.out))


def cmd_differential(args):
    """scenario/fuzz: the scenarios run in the guest after one smoke case of each suite."""
    from . import differential
    cell = cells.cell(args.cell)
    out = os.path.realpath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.cmd == "scenario":
        text, files = differential.scenario_script(args.files)
    else:
        text, files = differential.fuzz_script(args.seed, args.count, args.length)
    script = os.path.join(out, "scenarios.sh")
    with open(script, "w") as f:
        f.write(text)
    os.chmod(script, 0o755)
    args.guest_script = script
    args.guest_files_at = files
    args.only = differential.SMOKE
    status, _ = runner.run_cell(args, cell, out)
    return max(status, differential.report(out, args.cmd))


def cmd_report(args):
    return runner.report_again(os.path.realpath(args.out))


def cmd_shell(args):
    cell = cells.cell(args.cell)
    deps.ensure_deps()
    info = build.build(args, cell)
    out = tempfile.mkdtemp(prefix="dmirror-lab-shell-")
    dmirror_path, status, _ = dmirror.build_dmirror(args, out)
    say(status)
    settings = runner.guest_settings(args, cell)
    spm0, spm1, _ = qemu.spm_layout(settings.mem)
    config = guest.config_text("shell", spm0, spm1, cell.test_hmm, args.test_timeout, False, cell.thp)
    initrd = os.path.join(out, "initramfs.cpio")
    initramfs.make_initramfs(initrd, info, dmirror_path, config)
    guest.prepare_share(out, {})
    cmd, _ = qemu.qemu_cmd(settings, info, initrd, ["-serial", "mon:stdio"], share=out)
    say("shell: booting; Ctrl-A X quits qemu")
    try:
        return subprocess.call(cmd)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def kernel_options(p):
    g = p.add_argument_group("kernel")
    g.add_argument("--cell", default=cells.DEFAULT_CELL, metavar="NAME",
                   help=f"kernel x profile x THP mode (default {cells.DEFAULT_CELL}; `scripts/lab cells`)")
    g.add_argument("--source", metavar="DIR",
                   help="build this kernel tree instead of the cell's Debian package (same config)")
    g.add_argument("--kernel", metavar="BZIMAGE", help="use a prebuilt kernel (with --modules)")
    g.add_argument("--modules", metavar="DIR", help="directory containing the matching test_hmm.ko")
    g.add_argument("--kasan", action="store_true", help="also enable KASAN (separate cache entry)")
    g.add_argument("--rebuild", action="store_true", help="ignore the cached build")


def guest_options(p):
    g = p.add_argument_group("guest")
    g.add_argument("--kvm", action="store_true", help="use KVM (default TCG)")
    g.add_argument("--cpu", help="qemu -cpu model (default max for TCG, host for KVM)")
    g.add_argument("--cpus", type=int, help="guest CPUs (default: the cell's profile, 2 or 4)")
    g.add_argument("--mem", type=int,
                   help="guest RAM in MiB, including the 512 MiB reserved for the coherent devices "
                        "(default: the cell's profile, 4096 or 16384)")
    g.add_argument("--dmirror", metavar="PATH", help="use this dmirror binary instead of building it")
    g.add_argument("--no-dmirror", action="store_true", help="run only the C suite")
    g.add_argument("--append", action="append", help="extra kernel cmdline argument (repeatable)")
    g.add_argument("--panic-on-oops", action="store_true", help="add oops=panic")
    g.add_argument("--test-timeout", type=int, default=300,
                   help="seconds before the guest kills one C case's process (default 300)")


def run_options(p):
    p.add_argument("--bench", action="store_true", help=f"also run {BENCH} (>500 s under TCG)")
    p.add_argument("--only", metavar="REGEX", help="run only cases whose name matches (a finding alone)")
    p.add_argument("--upto", metavar="CASE",
                   help="stop each suite after this case (a finding with the cases run before it)")
    p.add_argument("--no-trace", action="store_true",
                   help="run dmirror without --trace (to time it so; no trace comparison)")
    p.add_argument("--record-traces", action="store_true",
                   help="copy the kernel's traces into Tests/KernelTraces/<cell>/ with cell.json")
    p.add_argument("--extras", action="store_true",
                   help="also run, in the same boot after both suites: dmirror bench --backend kernel "
                        "beside the C loop scripts/hmm-bench.c (each ratio), dmirror doctor, and "
                        "dmirror run --count-walks on a few migrate cases (walks vs the simulator's)")
    p.add_argument("--stress", type=int, metavar="N",
                   help="also run dmirror explore read-retry-stress --backend kernel --repeat N in the "
                        "guest after both suites (an invalidation between hmm_range_fault() and the "
                        "commit must leave no stale device mapping); `mutants` runs it by default")
    p.add_argument("--explore", type=int, metavar="N",
                   help="also run every scenario of `dmirror explore --list` on the kernel, N repetitions "
                        "each, and set their outcomes beside the simulator's outcome set")
    p.add_argument("--explore-only", metavar="A,B",
                   help="with --explore: only these scenarios, in this order")
    p.add_argument("--scenarios", action="store_true",
                   help="also run each kept scenario (Tests/Scenarios/*.scn) on the kernel and compare its "
                        "lines with the simulator's (DIR/scenarios/NAME.expected)")
    p.add_argument("--record-scenarios", action="store_true",
                   help="--scenarios, and write each kernel's lines to Tests/Scenarios/NAME.expected")
    p.add_argument("--guest-script", metavar="FILE",
                   help="also run FILE (busybox sh) in the guest after both suites, before the unload; "
                        "its output in guest/boot-N/results/extra.out, its files in results/extra/")
    p.add_argument("--guest-file", action="append", metavar="PATH",
                   help="also put PATH in the guest's /lab (with its shared libraries), for "
                        "--guest-script (repeatable)")
    p.add_argument("--timeout", type=int, default=75, help="minutes per boot (default 75)")
    p.add_argument("--hang-after", type=int, default=120,
                   help="seconds a case may run before the lab calls it hung in the kernel and boots "
                        "afresh (default 120; the harness itself stops a case at 30 s, the benchmark "
                        "at 120 s, which gets 90 s more)")


def parser():
    ap = argparse.ArgumentParser(prog="scripts/lab", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("run", help="one cell: build, boot, run both suites, report")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="where the report files go")
    p.add_argument("--mutant", metavar="NAME", help="with the test_hmm.ko of scripts/mutants/NAME.patch")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("matrix", help="run several cells and print one table")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("--cells", metavar="A,B,...", help="the cells (default: all, cheapest first)")
    p.add_argument("--out", required=True, metavar="DIR", help="DIR/<cell>/ per cell, DIR/matrix.md")
    p.set_defaults(func=cmd_matrix, mutant=None)

    p = sub.add_parser("compare", help="run two kernels and report what changed")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("--base", required=True, metavar="CELL", help="the baseline cell")
    p.add_argument("--with", dest="with_cell", metavar="CELL", help="the other cell")
    p.add_argument("--mutant", metavar="NAME",
                   help="the other side runs with the test_hmm.ko of scripts/mutants/NAME.patch")
    p.add_argument("--out", required=True, metavar="DIR", help="DIR/base, DIR/with, DIR/compare.md")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("mutants", help="each injected bug in scripts/mutants against stock 7.3")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="DIR/stock, DIR/<mutant>, DIR/mutants.md")
    p.add_argument("--mutants", metavar="A,B,...", help="only these mutants (names of the .patch files)")
    p.set_defaults(func=cmd_mutants, mutant=None)

    p = sub.add_parser("build", help="build (or reuse) the kernel, test_hmm.ko and hmm-tests")
    kernel_options(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("shell", help="boot the test kernel with a shell on the console")
    kernel_options(p)
    guest_options(p)
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("scenario", help="scenario files on the real driver, each against the simulator")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario files (docs/scenarios.md)")
    p.add_argument("--out", required=True, metavar="DIR", help="the report; DIR/differences")
    p.set_defaults(func=cmd_differential, mutant=None)

    p = sub.add_parser("fuzz", help="random scenarios on the real driver, each against the simulator")
    kernel_options(p)
    guest_options(p)
    run_options(p)
    p.add_argument("--seed", type=int, default=1, help="the run's seed (dmirror fuzz --seed)")
    p.add_argument("--count", type=int, default=200, help="how many scenarios (default 200)")
    p.add_argument("--length", type=int, default=20, help="operations per scenario (default 20)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the report; shrunk differences in DIR/differences")
    p.set_defaults(func=cmd_differential, mutant=None)

    sub.add_parser("cells", help="list the cells").set_defaults(func=cmd_cells)
    sub.add_parser("deps", help="install the Debian packages the lab needs").set_defaults(func=cmd_deps)
    p = sub.add_parser("fetch", help="download and unpack a cell's kernel source")
    p.add_argument("--cell", default=cells.DEFAULT_CELL, metavar="NAME")
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
