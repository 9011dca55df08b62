"""The kernel configuration: `make tinyconfig`, the lab's fragment (and a
profile's fragment on top) merged with the tree's scripts/config,
olddefconfig, then every option checked, because Kconfig silently drops an
option whose dependencies fail.

A fragment line may end in `# lab: COND[, COND...]`; it counts only when every
condition holds. Conditions: `kasan` (only with --kasan), `>=X.Y` and `<X.Y`
(the tree's kernel version), for options a kernel generation added or removed."""

import os
import re

from .common import KERNEL_FRAGMENT, SCRIPTS, LabError, run

COND = re.compile(r"#\s*lab:\s*(.*)$")


def holds(cond, kasan, version, where):
    m = re.fullmatch(r"(>=|<)(\d+)\.(\d+)", cond)
    if m:
        want = (int(m.group(2)), int(m.group(3)))
        return version >= want if m.group(1) == ">=" else version < want
    if cond == "kasan":
        return kasan
    raise LabError(f"{where}: unknown condition {cond!r} after '# lab:' (kasan, >=X.Y, <X.Y)")


def fragment_lines(kasan, path=KERNEL_FRAGMENT, version=(7, 3)):
    """(option, value) pairs of a fragment whose conditions hold for this build."""
    out = []
    with open(path) as f:
        for raw in f:
            line, _, comment = raw.partition("#")
            line = line.strip()
            if not line:
                continue
            m = COND.search("#" + comment)
            if m and not all(holds(c.strip(), kasan, version, path) for c in m.group(1).split(",")):
                continue
            m = re.fullmatch(r"CONFIG_([A-Z0-9_]+)=(\S+)", line)
            if not m:
                raise LabError(f"bad line in {path}: {line!r}")
            out.append((m.group(1), m.group(2)))
    return out


def merged(*lists):
    """One list of (option, value): an option keeps its first place, the last value wins."""
    values = {}
    for opts in lists:
        for name, val in opts:
            values[name] = val
    return list(values.items())


def cell_options(cell, kasan, version):
    """Every option a cell's kernel is built with: the lab fragment, the profile's
    fragment, and TEST_HMM as the cell says (m: a module, y: built in)."""
    lists = [fragment_lines(kasan, KERNEL_FRAGMENT, version)]
    if cell.profile.fragment:
        lists.append(fragment_lines(kasan, os.path.join(SCRIPTS, cell.profile.fragment), version))
    lists.append([("TEST_HMM", cell.test_hmm)])
    return merged(*lists)


def config_args(opts):
    """scripts/config arguments that set every (option, value)."""
    args = []
    for name, val in opts:
        if val == "y":
            args += ["-e", name]
        elif val == "n":
            args += ["-d", name]
        elif val == "m":
            args += ["-m", name]
        elif val.startswith('"'):
            args += ["--set-str", name, val.strip('"')]
        else:
            args += ["--set-val", name, val]
    return args


def parse_config(text):
    """{option: value} of a .config (unset options are absent)."""
    have = {}
    for line in text.splitlines():
        m = re.match(r"CONFIG_([A-Z0-9_]+)=(.*)", line)
        if m:
            have[m.group(1)] = m.group(2)
    return have


def unstuck(opts, have):
    """The first (option, wanted, got) that olddefconfig did not keep, or None."""
    for name, val in opts:
        got = have.get(name, "n")
        if got != val:
            return name, val, got
    return None


def configure(tree, obj, opts, log, fragments):
    make = ["make", "-s", f"O={obj}"]
    run([*make, "tinyconfig"], cwd=tree, stdout=log, stderr=log)
    run(["./scripts/config", "--file", os.path.join(obj, ".config"), *config_args(opts)],
        cwd=tree, stdout=log, stderr=log)
    run([*make, "olddefconfig"], cwd=tree, stdout=log, stderr=log)
    with open(os.path.join(obj, ".config")) as f:
        bad = unstuck(opts, parse_config(f.read()))
    if bad:
        name, val, got = bad
        raise LabError(f"kernel option CONFIG_{name}={val} did not stick after olddefconfig "
                       f"(got {got}); check its dependencies in Kconfig and fix "
                       f"{' or '.join(fragments)} (a line may carry '# lab: <X.Y' or '>=X.Y')")
