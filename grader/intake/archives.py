"""Read one submission as a list of files, safely: a folder, an archive, archives inside them, or loose files.

Nothing is extracted to disk and nothing is followed: a folder is walked without following links, an archive is
read member by member. The search rule (``grader.intake.collect``) then picks the exercise files from the list.

* A folder is walked ``SCAN_DEPTH`` levels deep (deeper than the search rule looks, so that a file that is too deep
  can be named in the reason), skipping hidden folders, ``__MACOSX``, ``__pycache__``, ``site-packages`` and
  ``node_modules``; at most ``MAX_SCANNED`` files are listed.
* An archive (``.zip``, ``.tar.gz``, ``.tgz``) is checked before anything is read: member count, total declared
  uncompressed size, and every member's path and type. An absolute path or ``..``, a symlink, a hard link or a
  device makes the whole submission ungradable (``SubmissionError`` names the member), as does a corrupt or
  over-large archive that IS the submission.
* An archive found inside the submission (a student's zip in a Moodle folder, a zip uploaded to Canvas, a zip
  in a zip) within the search depth is opened the same way, down to ``MAX_NESTING`` levels; its members count
  their depth from the archive's own root. One that cannot be opened (corrupt, too large, nested too deep, or a
  format we do not read such as ``.rar``) is listed in ``Tree.unopened`` so that the reason can say so.
* Loose files (a Canvas download: one file per upload) are ``Part``s with the name they stand for.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
OTHER_ARCHIVES = (".rar", ".7z", ".tar", ".tar.bz2", ".tar.xz", ".tbz2", ".txz", ".gz", ".bz2", ".xz")
MAX_DEPTH = 3  # the search rule: x.py is depth 1, exercises/x.py 2, repo-main/exercises/x.py 3
SCAN_DEPTH = 8
MAX_NESTING = 2
MAX_SCANNED = 10_000
SKIPPED_DIRS = {"__MACOSX", "__pycache__", "site-packages", "node_modules"}


class SubmissionError(Exception):
    """The submission as a whole cannot be graded; the message is the reason shown in the gradebook."""


MAX_TAR_HEADER = 64 * 1024  # a pax or GNU long-name header: a long path and a few attributes take far less
_EXTENDED_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                     tarfile.GNUTYPE_LONGLINK)


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header, as tarfile reads it, but an extended header (pax, GNU long name) past ``MAX_TAR_HEADER`` is
    refused before it is read: tarfile reads one whole into memory, whatever size it declares, before it returns
    the member it belongs to, and no member count or size cap sees it (2 GiB of zeros declared by a 2 MB archive
    took the batch parent 2 GB and 51 s, twice)."""

    def _proc_member(self, tarfile_):
        if self.type in _EXTENDED_HEADERS and self.size > MAX_TAR_HEADER:
            raise SubmissionError(f"unsafe archive: a tar extended header of {self.size:,} bytes (more than"
                                  f" {MAX_TAR_HEADER // 1024} KiB; refused)")
        return super()._proc_member(tarfile_)


@dataclass(frozen=True)
class Caps:
    """Limits on what a submission may hold."""

    max_file_bytes: int = 1_000_000  # one exercise file
    max_archive_bytes: int = 50 * 1024 * 1024  # total declared uncompressed size of the archives of one submission
    max_archive_file_bytes: int = 200 * 1024 * 1024  # the archive file itself, compressed
    max_members: int = 10_000


@dataclass(frozen=True)
class Part:
    """One file or folder of a student's submission, when a submission is more than one entry (an LMS download).

    ``name`` is what a loose file stands for (a Canvas upload's original file name, re-upload suffix removed);
    ``None`` for a folder, whose content is searched as the submission. ``label`` names it in messages."""

    path: Path
    name: str | None = None
    label: str = ""


@dataclass
class Member:
    path: PurePosixPath  # for the search rule: its depth counts from its own root (the entry, or an archive's)
    label: str  # where it is, for messages: "work.zip/exercises/x.py", "doejane_12_34_x-1.py"
    size: int
    read: Callable[[int], bytes]  # reads at most n bytes
    level: int = 0  # 0: not inside an archive of the submission; n: inside n nested archives
    refused: str | None = None  # a symlink or special file found in a folder: never read


@dataclass
class Tree:
    caps: Caps
    members: list[Member] = field(default_factory=list)
    unopened: list[str] = field(default_factory=list)  # "work.rar (not a supported archive: ...)"
    archive_members: int = 0  # budgets shared by every archive of the submission
    archive_bytes: int = 0


def archive_suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in ARCHIVE_SUFFIXES if lower.endswith(s) and len(lower) > len(s)), None)


def searchable(parts: tuple[str, ...], depth: int = MAX_DEPTH) -> bool:
    if not parts or len(parts) > depth:
        return False
    return not any(p.startswith(".") or p in SKIPPED_DIRS for p in parts[:-1])


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


# ----------------------------------------------------------------------------------------------------------
# Building the tree
# ----------------------------------------------------------------------------------------------------------


def read_entry(entry: Path, caps: Caps, stack: contextlib.ExitStack, kind: str) -> Tree:
    """The files of one entry of the submissions folder (``kind``: 'folder', 'zip' or 'tar')."""
    tree = Tree(caps)
    if kind == "folder":
        _add_folder(tree, entry, stack)
    else:
        size = entry.stat().st_size
        if size > caps.max_archive_file_bytes:
            raise SubmissionError(f"archive too large ({_mb(size)}, limit {_mb(caps.max_archive_file_bytes)})")
        _add_archive(tree, stack.enter_context(open(entry, "rb")), kind, "", 0, stack, strict=True)
    _open_nested(tree, stack)
    return tree


def read_parts(parts: list[Part], caps: Caps, stack: contextlib.ExitStack) -> Tree:
    """The files of a student whose submission is several entries (loose uploaded files, per-plugin folders)."""
    tree = Tree(caps)
    for part in parts:
        if part.path.is_symlink():
            continue
        if part.name is None and part.path.is_dir():
            _add_folder(tree, part.path, stack)
        elif part.path.is_file():
            info = part.path.lstat()
            tree.members.append(Member(PurePosixPath(part.name or part.path.name), part.label or part.path.name,
                                       info.st_size, _file_reader(part.path)))
    _open_nested(tree, stack)
    return tree


def _file_reader(path: Path) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as f:
            return f.read(n)

    return read


def _add_folder(tree: Tree, root: Path, stack: contextlib.ExitStack) -> None:
    scanned = 0
    pending = [(root, ())]
    while pending:
        folder, parts = pending.pop()
        try:
            children = sorted(os.scandir(folder), key=lambda c: c.name)
        except OSError:
            continue
        for child in children:
            here = (*parts, child.name)
            if child.is_dir(follow_symlinks=False):
                if len(here) < SCAN_DEPTH and searchable((*here, "x"), SCAN_DEPTH):
                    pending.append((Path(child.path), here))
                continue
            scanned += 1
            if scanned > MAX_SCANNED:
                return
            info = child.stat(follow_symlinks=False)
            refused = None if stat.S_ISREG(info.st_mode) else "a symlink or special file (refused)"
            path = PurePosixPath(*here)
            tree.members.append(Member(path, str(path), info.st_size, _file_reader(Path(child.path)),
                                       refused=refused))


def _member_path(raw: str, label: str) -> PurePosixPath:
    """Check one archive member's name; refuse absolute paths and '..'."""
    name = raw.replace("\\", "/")
    shown = f"{label}/{raw}" if label else raw
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise SubmissionError(f"unsafe archive member {shown!r}: absolute path (refused)")
    path = PurePosixPath(name)
    if ".." in path.parts:
        raise SubmissionError(f"unsafe archive member {shown!r}: path leaves the archive (refused)")
    return path


def _count(tree: Tree, members: int, size: int, label: str) -> None:
    """Charge an archive's members to the submission's budget; SubmissionError past a limit."""
    tree.archive_members += members
    tree.archive_bytes += size
    caps, where = tree.caps, f" ({label})" if label else ""
    if tree.archive_members > caps.max_members:
        raise SubmissionError(f"archive has too many members{where} (more than {caps.max_members:,})")
    if tree.archive_bytes > caps.max_archive_bytes:
        raise SubmissionError(f"archive too large when unpacked{where} (more than {_mb(caps.max_archive_bytes)})")


def _add_archive(tree: Tree, fileobj, kind: str, label: str, level: int, stack, *, strict: bool) -> None:
    """Add an archive's members. ``strict`` (the archive is the submission): any failure is a SubmissionError;
    otherwise only an unsafe member is, and a corrupt or over-large archive is listed as not opened."""
    try:
        adder = _zip_members if kind == "zip" else _tar_members
        members = adder(tree, fileobj, label, stack)
    except SubmissionError as exc:
        if strict or str(exc).startswith("unsafe"):
            raise
        tree.unopened.append(f"{label} ({exc})")
        return
    except Exception as exc:  # noqa: BLE001 - zlib.error, BadZipFile, ReadError, EOFError...: a corrupt archive
        if strict:
            raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None
        tree.unopened.append(f"{label} (corrupt archive: {type(exc).__name__})")
        return
    for member in members:
        member.level = level
        if label:
            member.label = f"{label}/{member.label}"
    tree.members += members


def _zip_members(tree: Tree, fileobj, label: str, stack) -> list[Member]:
    zf = stack.enter_context(zipfile.ZipFile(fileobj))
    infos = zf.infolist()
    _count(tree, len(infos), sum(i.file_size for i in infos), label)
    out = []
    for info in infos:
        path = _member_path(info.filename, label)
        kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded, a plain file
            what = "symlink" if kind == stat.S_IFLNK else "device or special file"
            shown = f"{label}/{info.filename}" if label else info.filename
            raise SubmissionError(f"unsafe archive member {shown!r}: {what} (refused)")
        if not info.is_dir() and path.parts:
            out.append(Member(path, str(path), info.file_size, _zip_reader(zf, info, label)))
    return out


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        if info.flag_bits & 0x1:
            raise SubmissionError(f"archive member {(label + '/' if label else '') + info.filename!r} is encrypted")
        try:
            with zf.open(info) as f:
                return f.read(n)
        except Exception as exc:  # noqa: BLE001 - a member that does not inflate: a corrupt archive
            raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None

    return read


def _tar_members(tree: Tree, fileobj, label: str, stack) -> list[Member]:
    tf = stack.enter_context(tarfile.open(fileobj=fileobj, mode="r:*", tarinfo=_BoundedTarInfo))
    out = []
    # Headers are read one at a time, so a bomb is refused at the header that crosses a limit, before its data
    # is ever decompressed.
    while (info := tf.next()) is not None:
        _count(tree, 1, max(info.size, 0), label)
        path = _member_path(info.name, label)
        shown = f"{label}/{info.name}" if label else info.name
        if info.issym() or info.islnk():
            raise SubmissionError(f"unsafe archive member {shown!r}: {'symlink' if info.issym() else 'hard link'}"
                                  " (refused)")
        if not (info.isreg() or info.isdir()):
            raise SubmissionError(f"unsafe archive member {shown!r}: device or special file (refused)")
        if info.isreg() and path.parts:
            out.append(Member(path, str(path), info.size, _tar_reader(tf, info)))
    return out


def _tar_reader(tf: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        try:
            f = tf.extractfile(info)
            return f.read(n) if f else b""
        except Exception as exc:  # noqa: BLE001
            raise SubmissionError(f"corrupt archive ({type(exc).__name__}: {exc})") from None

    return read


def _open_nested(tree: Tree, stack) -> None:
    """Open the archives found inside the submission (within the search depth), level by level."""
    done = 0
    while done < len(tree.members):
        member = tree.members[done]
        done += 1
        suffix = archive_suffix(member.path.name)
        lower = member.path.name.lower()
        if member.refused or not searchable(member.path.parts):
            continue
        if suffix is None:
            if lower.endswith(OTHER_ARCHIVES):
                tree.unopened.append(f"{member.label} (not a supported archive: use .zip, .tar.gz or .tgz)")
            continue
        if member.level >= MAX_NESTING:
            tree.unopened.append(f"{member.label} (an archive nested {member.level + 1} deep: not opened)")
            continue
        limit = min(tree.caps.max_archive_bytes, tree.caps.max_archive_file_bytes)
        if member.size > limit:
            tree.unopened.append(f"{member.label} (too large: {_mb(member.size)})")
            continue
        data = member.read(limit + 1)
        kind = "zip" if suffix == ".zip" else "tar"
        _add_archive(tree, io.BytesIO(data), kind, member.label, member.level + 1, stack, strict=False)
