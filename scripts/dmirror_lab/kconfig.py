"""The kernel configuration: `make tinyconfig`, the lab's fragment merged with
the tree's scripts/config, olddefconfig, then every option of the fragment
checked, because Kconfig silently drops an option whose dependencies fail."""

import os
import re

from .common import KERNEL_FRAGMENT, LabError, run


def fragment_lines(kasan, path=KERNEL_FRAGMENT):
    """(option, value) pairs from scripts/lab-kernel.config; lines marked
    `# lab: kasan` only with kasan."""
    out = []
    with open(path) as f:
        for raw in f:
            if "# lab: kasan" in raw and not kasan:
                continue
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r"CONFIG_([A-Z0-9_]+)=(\S+)", line)
            if not m:
                raise LabError(f"bad line in {path}: {line!r}")
            out.append((m.group(1), m.group(2)))
    return out


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


def configure(tree, obj, kasan, log):
    opts = fragment_lines(kasan)
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
                       f"scripts/lab-kernel.config")
