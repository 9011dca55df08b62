"""The kernel source: a Debian linux-source package (cells.KERNELS), fetched
with a private apt configuration from the mirror this machine's apt sources
already name (the lab never names a host itself), or a tree given with
--source DIR."""

import glob
import os
import re
import subprocess
import tarfile

from . import safetar
from .common import CACHE, LabError, run, say


def deb822_candidates(text):
    """(uri, suites) of every enabled `Types: deb` stanza of a .sources file."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            # comments, continuation lines (say, an inline Signed-By key) and junk carry no URI
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.split()
        enabled = (fields.get("enabled") or ["yes"])[0].lower()
        if "deb" not in fields.get("types", []) or enabled == "no":
            continue
        suites = fields.get("suites", [])
        for uri in fields.get("uris", []):
            out.append((uri, suites))
    return out


def one_line_candidates(text):
    """(uri, [suite]) of every `deb` line of a sources.list file."""
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append((words[1], [words[2]]))
    return out


def choose_mirror(candidates):
    """The first Debian archive (a URI ending in /debian) that is not the security
    archive; else the first non-security URI; else None."""
    for uri, suites in candidates:
        if "security" in uri or not suites or any("security" in s for s in suites):
            continue
        if re.search(r"/debian/?$", uri):
            return uri.rstrip("/")
    for uri, _ in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    return None


def apt_candidates(etc="/etc/apt"):
    """Every (uri, suites) this machine's apt sources name, deb822 files first."""
    candidates = []
    for path in sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.sources"))):
        with open(path) as f:
            candidates += deb822_candidates(f.read())
    one_line = [os.path.join(etc, "sources.list")]
    one_line += sorted(glob.glob(os.path.join(etc, "sources.list.d", "*.list")))
    for path in one_line:
        if os.path.exists(path):
            with open(path) as f:
                candidates += one_line_candidates(f.read())
    return candidates


def debian_mirror(etc="/etc/apt", environ=os.environ):
    """The Debian mirror this machine's apt already uses (never hard-coded)."""
    if environ.get("DMIRROR_LAB_MIRROR"):
        return environ["DMIRROR_LAB_MIRROR"]
    mirror = choose_mirror(apt_candidates(etc))
    if not mirror:
        raise LabError("no Debian mirror found in /etc/apt/sources.list*; "
                       "set DMIRROR_LAB_MIRROR=<mirror URI> and retry")
    return mirror


def apt_options(aptdir):
    """apt-get options for a private configuration: its own source list, lists,
    cache and an empty status, so the system's apt state is not touched."""
    return ["-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={aptdir}",
            "-o", f"Dir::State::Lists={aptdir}/lists",
            "-o", f"Dir::Cache={aptdir}/cache",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=root"]


def download_deb(aptdir, archives, package, suite):
    mirror = debian_mirror()
    say(f"source: fetching {package} ({suite}) from {mirror} with a private apt config")
    with open(os.path.join(aptdir, f"{suite}.sources"), "w") as f:
        f.write(f"Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    opts = apt_options(aptdir)
    try:
        run(["apt-get", *opts, "-q", "update"], stdout=subprocess.DEVNULL)
        run(["apt-get", *opts, "-q", "download", package], cwd=archives, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        raise LabError(f"apt could not download {package} from {suite}; check the "
                       f"mirror ({mirror}) or pass --source DIR") from None


def unpack_deb(deb, srcdir):
    """The .deb's files into srcdir: dpkg-deb writes the data tar to a pipe and
    tarfile reads it as a stream, through the "data" filter (or safetar's
    equivalent on a Python without it)."""
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE) as p:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
            safetar.extract_all(tf, srcdir)
        # tarfile stops at the end-of-archive blocks; read dpkg-deb's padding too, so
        # it does not die of a broken pipe
        while p.stdout.read(1 << 16):
            pass
    if p.returncode != 0:
        raise LabError(f"dpkg-deb --fsys-tarfile {deb} failed (exit {p.returncode}); "
                       "delete the .deb and run again")


def unpack_tarball(tarball, dest):
    with tarfile.open(tarball) as tf:
        safetar.extract_all(tf, dest)


def fetch_debian_source(kernel):
    """Download kernel.package from kernel.suite with a private apt config (the
    system's sources and state are left alone) and unpack it. Returns (tree, version)."""
    package = kernel.package
    srcdir = os.path.join(CACHE, "src")
    tree = os.path.join(srcdir, package)
    stamp = os.path.join(tree, ".dmirror-lab-version")
    if os.path.exists(stamp) and os.path.exists(os.path.join(tree, "Makefile")):
        with open(stamp) as f:
            return tree, f.read().strip()
    # one private apt state per suite, so suites never mix their lists
    aptdir = os.path.join(CACHE, "apt", kernel.suite)
    archives = os.path.join(aptdir, "archives")
    os.makedirs(os.path.join(aptdir, "lists", "partial"), exist_ok=True)
    os.makedirs(os.path.join(aptdir, "cache", "archives", "partial"), exist_ok=True)
    os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
    debs = sorted(glob.glob(os.path.join(archives, f"{package}_*.deb")))
    if not debs:
        download_deb(aptdir, archives, package, kernel.suite)
        debs = sorted(glob.glob(os.path.join(archives, f"{package}_*.deb")))
        if not debs:
            raise LabError(f"apt reported success but no {package} .deb is in {archives}")
    deb = debs[-1]
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    if not os.path.exists(os.path.join(tree, "Makefile")):
        say(f"source: unpacking {os.path.basename(deb)}")
        os.makedirs(srcdir, exist_ok=True)
        unpack_deb(deb, srcdir)
        tarball = os.path.join(srcdir, "usr", "src", f"{package}.tar.xz")
        if not os.path.exists(tarball):
            raise LabError(f"{os.path.basename(deb)} holds no usr/src/{package}.tar.xz; "
                           "delete it from the cache and run again")
        unpack_tarball(tarball, srcdir)
        os.unlink(tarball)
    with open(stamp, "w") as f:
        f.write(version + "\n")
    return tree, version


def local_tree(path):
    """(tree, version) of a kernel tree given with --source."""
    tree = os.path.realpath(path)
    if not os.path.exists(os.path.join(tree, "lib", "test_hmm.c")):
        raise LabError(f"{tree} is not a kernel tree with lib/test_hmm.c; pass a Linux source directory")
    version = subprocess.run(["make", "-s", "kernelversion"], check=False, cwd=tree,
                             capture_output=True, text=True).stdout.strip() or "unknown"
    return tree, version
