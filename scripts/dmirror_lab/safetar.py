"""Unpacking a tar the lab did not write (the kernel source packages) without
letting it write outside the target: tarfile's "data" filter where this Python
has it (3.11.4+), else the same checks done here, because Debian 12's own
python3 (3.11.2) lacks the filter and CI has only what the project installs.

Refused, as the data filter refuses them: absolute member names, names that
leave the target (`..`), symbolic or hard links that point outside it (or are
absolute), and device nodes and FIFOs. Set-id and sticky bits and group/other
write bits are cleared, owners are not restored (the extracting user owns
everything), and regular files get owner read/write, as the filter does."""

import copy
import os
import stat
import tarfile

from .common import LabError


def extract_all(tf, dest, has_filter=None):
    """Every member of the open TarFile tf into dest (works on streams too)."""
    if has_filter is None:
        has_filter = hasattr(tarfile, "data_filter")
    if has_filter:
        try:
            tf.extractall(dest, filter="data")
        except tarfile.FilterError as e:
            raise LabError(f"refusing to unpack {tf.name or 'a tar stream'}: {e}") from None
        return
    dest = os.path.realpath(dest)
    os.makedirs(dest, exist_ok=True)
    # one member at a time, checked just before it is written: a stream cannot be listed
    # first, and a check against the tree as it stands sees links made by earlier members
    # a Python that has the filter (only when a test forces this path) warns without one
    trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
    for member in tf:
        tf.extract(checked(member, dest), dest, set_attrs=True, numeric_owner=True, **trusted)


def inside(dest, path):
    """Whether path (already joined to dest) stays in dest after symlinks resolve."""
    real = os.path.realpath(path)
    return real == dest or real.startswith(dest + os.sep)


def refuse(member, why):
    raise LabError(f"refusing to unpack tar member {member.name!r}: {why}; the archive is not "
                   "a plain source tree (delete it from the cache and fetch it again)")


def checked(member, dest):
    """member as the data filter would extract it, or LabError when it refuses it."""
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        refuse(member, "absolute name")
    target = os.path.join(dest, name)
    if not inside(dest, target):
        refuse(member, "outside the target directory")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        refuse(member, "device node or FIFO")
    if member.issym():
        if os.path.isabs(member.linkname):
            refuse(member, f"symbolic link to an absolute path ({member.linkname})")
        if not inside(dest, os.path.join(os.path.dirname(target), member.linkname)):
            refuse(member, f"symbolic link out of the target ({member.linkname})")
    if member.islnk():
        if os.path.isabs(member.linkname):
            refuse(member, f"hard link to an absolute path ({member.linkname})")
        if not inside(dest, os.path.join(dest, member.linkname)):
            refuse(member, f"hard link out of the target ({member.linkname})")
    return sanitised(member)


def sanitised(member):
    """A copy of member with the data filter's mode and owner rules applied."""
    mode = member.mode
    if mode is not None:
        mode &= ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH)
    if member.isreg() or member.islnk():
        mode |= stat.S_IRUSR | stat.S_IWUSR
        if not mode & stat.S_IXUSR:
            mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    elif not member.issym():
        # the filter leaves directories to the umask; here: owner rwx, nobody else writes
        mode = (mode | stat.S_IRWXU) & 0o755
    out = copy.copy(member)   # TarInfo.replace() is as new as the filter
    # numeric_owner with our own ids: tarfile chowns only as root, and then to us
    out.mode, out.uid, out.gid, out.uname, out.gname = mode, os.getuid(), os.getgid(), "", ""
    return out
