"""The Debian packages the lab needs, and installing the missing ones."""

import os
import subprocess

from .common import LabError, run, say

DEB_PACKAGES = [
    "qemu-system-x86", "build-essential", "flex", "bison", "bc", "libelf-dev",
    "libssl-dev", "cpio", "busybox-static", "ccache", "xz-utils",
    "debian-archive-keyring",
]


def missing_packages():
    missing = []
    for pkg in DEB_PACKAGES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                           check=False, capture_output=True, text=True)
        if "install ok installed" not in r.stdout:
            missing.append(pkg)
    if not os.path.exists("/bin/busybox") and "busybox-static" not in missing:
        missing.append("busybox-static")
    return missing


def install_packages(pkgs):
    if os.geteuid() != 0:
        raise LabError(f"missing Debian packages {' '.join(pkgs)}; run as root "
                       f"or: sudo apt-get install {' '.join(pkgs)}")
    say(f"deps: installing {' '.join(pkgs)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *pkgs],
            env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        raise LabError("apt-get could not install the lab's packages; run "
                       "`scripts/lab deps` and read apt's message") from None


def ensure_deps():
    missing = missing_packages()
    if missing:
        install_packages(missing)
