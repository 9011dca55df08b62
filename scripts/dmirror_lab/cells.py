"""The lab's cells, in one place: a cell is a kernel x a profile x a THP mode
(x TEST_HMM m or y). Every other part of the lab (run --cell, matrix, compare,
the workflow file, the recorded traces) names cells from this table.

A kernel is a Debian linux-source package from one suite of the mirror the
machine's apt sources name. A profile is how the guest is built and booted:
"lab" is the lab's own small kernel (tinyconfig + scripts/lab-kernel.config,
2 CPUs, 4 GiB); "mmci" adds linux-mm CI's kconfig fragment
(scripts/lab-mmci.config) and boots as mm-ci's vng does (4 CPUs, 16 GiB, two
8 GiB NUMA nodes, oops=panic)."""

import dataclasses
import re

from .common import LabError


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str          # "7.3": what cell names start with
    package: str       # the Debian source package
    suite: str         # the Debian suite that carries it


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    fragment: str | None   # extra kconfig fragment in scripts/, on top of lab-kernel.config
    cpus: int
    mem_mib: int
    numa_mib: tuple = ()   # one entry per NUMA node; empty: no NUMA topology
    append: tuple = ()     # extra kernel command line
    thp_from_config: bool = False   # THP mode comes from Kconfig, not transparent_hugepage=


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str
    kernel: Kernel
    profile: Profile
    thp: str               # always | madvise | never: what the guest's THP mode must be
    test_hmm: str          # m | y
    coherent: bool = True  # the device-coherent variant runs (spm addresses given)

    def as_json(self, release):
        """Tests/KernelTraces/<cell>/cell.json."""
        return {"cell": self.name, "release": release, "thp": self.thp, "test_hmm": self.test_hmm,
                "profile": self.profile.name, "coherent": self.coherent}


KERNELS = {
    "7.3": Kernel("7.3", "linux-source-7.3", "trixie-backports"),
    "6.12": Kernel("6.12", "linux-source-6.12", "trixie"),
    "6.1": Kernel("6.1", "linux-source-6.1", "bookworm"),
}

PROFILES = {
    "lab": Profile("lab", None, cpus=2, mem_mib=4096),
    # mm-ci's run-mm-selftests.sh: vng --cpus 4 --memory 16G --numa 8G --numa 8G
    # --append "console=hvc0 loglevel=8 panic=-1 oops=panic"
    "mmci": Profile("mmci", "lab-mmci.config", cpus=4, mem_mib=16384, numa_mib=(8192, 8192),
                    append=("loglevel=8", "oops=panic"), thp_from_config=True),
}


def _cells():
    k73, k612, k61 = KERNELS["7.3"], KERNELS["6.12"], KERNELS["6.1"]
    lab, mmci = PROFILES["lab"], PROFILES["mmci"]
    cells = [
        Cell("7.3-madvise", k73, lab, "madvise", "m"),
        Cell("7.3-always", k73, lab, "always", "m"),
        Cell("7.3-never", k73, lab, "never", "m"),
        Cell("7.3-builtin", k73, lab, "madvise", "y"),
        # mm-ci's fragment has TEST_HMM=y and TRANSPARENT_HUGEPAGE_ALWAYS; unlike mm-ci the
        # coherent devices get spm addresses, so that variant runs too
        Cell("7.3-mmci", k73, mmci, "always", "y"),
        Cell("6.12-madvise", k612, lab, "madvise", "m"),
        Cell("6.1-madvise", k61, lab, "madvise", "m"),
    ]
    return {c.name: c for c in cells}


CELLS = _cells()
DEFAULT_CELL = "7.3-madvise"
# what `scripts/lab matrix` runs without --cells: every cell, cheapest first
MATRIX_ORDER = ("7.3-madvise", "7.3-always", "7.3-never", "7.3-builtin", "6.12-madvise",
                "6.1-madvise", "7.3-mmci")


def cell(name):
    if name not in CELLS:
        raise LabError(f"no cell named {name!r}; the cells are {', '.join(MATRIX_ORDER)}")
    return CELLS[name]


def cell_list(text):
    """The cells of a --cells A,B,... argument, in the order given, each once."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if not names:
        raise LabError("--cells names no cell; pass e.g. --cells 7.3-madvise,6.1-madvise")
    out = []
    for n in names:
        c = cell(n)
        if c not in out:
            out.append(c)
    return out


def version_tuple(text):
    """(major, minor) of a kernel or package version ("6.1.158-1", "7.3.4-1~bpo13+1")."""
    m = re.match(r"(\d+)\.(\d+)", text)
    if not m:
        raise LabError(f"cannot read a kernel version from {text!r}")
    return int(m.group(1)), int(m.group(2))
