"""Who is in a submissions folder, and which files are whose: plain entries and the LMS download layouts.

Recognised layouts (a folder may mix them; each name is matched on its own):

* **Plain**: one entry per student, a folder or a ``.zip`` / ``.tar.gz`` / ``.tgz``. Student id: the entry name
  without its archive suffix; no LMS id.
* **Canvas** "Download Submissions", unzipped: loose files named
  ``<name>[_LATE]_<user id>_<attachment id>_<original file name>``, where ``<name>`` is the student's sortable
  name in lower case with everything but letters, digits and ``_`` removed (``doejane``), and an anonymous
  assignment has ``anon_<anonymous id>`` in place of ``<name>_<user id>``. Text and URL entries are
  ``<name>[_LATE]_<user id>_text.html`` / ``_link.html``. A file uploaded again under a name the student already
  used gets ``-1``, ``-2``... before its extension (``ex1_special_tokens-1.py``): the suffix is dropped and, of
  the uploads that then share a name, the newest (highest attachment id) is taken. An uploaded archive is opened.
  Student id ``<name>_<user id>``; LMS id: the user id (the ``ID`` column of Canvas's gradebook export).
* **Moodle** "Download all submissions", unzipped: a folder per student and submission plugin,
  ``<Full Name>_<participant id>_assignsubmission_<plugin>`` (Moodle 4.1 and later) or the same with a trailing
  ``_`` (earlier), holding what the student uploaded (often a zip, which is opened); with "Download submissions
  in folders" off, loose files ``<Full Name>_<participant id>_assignsubmission_<plugin>_<file name>``. Moodle
  turns ``_`` in names into spaces, so ``<Full Name>`` has none. Student id ``<Full Name>_<participant id>``; LMS
  id: the participant id (the ``Identifier`` column of the assignment's grading worksheet, "Participant <id>").

Names starting with ``.`` are ignored. A loose file that is neither an archive nor an LMS upload gets no row, nor
does a whole class's download left zipped (``submissions.zip``) or unzipped into a folder of its own: most of what
it holds is named as Canvas or Moodle name student files, for more than one student. Each is skipped with what to
do instead (unzip it, move its files up), never graded as one student.
"""

from __future__ import annotations

import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.intake.collect import entry_kind, student_id
from grader.untrusted import encodable, escaped, one_line
from grader.intake.archives import Part

NOT_A_SUBMISSION = "not a folder or a supported archive (.zip, .tar.gz, .tgz)"

CANVAS_PREFIX = r"(?:(?P<name>\w+?)_)??(?:(?P<late>late)_)?(?P<uid>anon_[A-Za-z0-9]+|\d+)"
CANVAS_FILE = re.compile(rf"^{CANVAS_PREFIX}_(?P<att>\d+)_(?P<file>.+)$", re.IGNORECASE)
CANVAS_ENTRY = re.compile(rf"^{CANVAS_PREFIX}_(?P<file>text|link)\.html$", re.IGNORECASE)
MOODLE_FOLDER = re.compile(r"^(?P<name>[^_]+)_(?P<uid>\d+)_(?P<plugin>assignsubmission_[a-z0-9]+)_?$")
MOODLE_FILE = re.compile(r"^(?P<name>[^_]+)_(?P<uid>\d+)_(?P<plugin>assignsubmission_[a-z0-9]+)_(?P<file>.+)$")
# Canvas's rule for a duplicate upload name: "<base>-<n><ext>" (n from 1; a UUID after 8 tries), where <ext> is
# every ".word" at the end (".tar.gz" stays whole)
EXTENSION = re.compile(r"(\.[A-Za-z][A-Za-z0-9]*)*(\.[A-Za-z0-9]*)$")
REUPLOAD = re.compile(r"-(\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


@dataclass
class Entry:
    """One student's submission: a plain entry (``parts`` is None) or an LMS download's files for one student."""

    student: str
    path: Path  # the entry; for an LMS student, the first of the parts
    lms: str = ""  # "canvas" or "moodle"
    lms_id: str = ""
    parts: list[Part] | None = None
    late: bool = False  # Canvas marked the submission late in its file names

    @property
    def label(self) -> str:
        """The entry's name(s) in the submissions folder, for messages."""
        if self.parts is None:
            return self.path.name + ("/" if self.path.is_dir() and not self.path.is_symlink() else "")
        names = sorted({p.path.name + ("/" if p.name is None else "") for p in self.parts})
        return ", ".join(names[:2]) + (f" (and {len(names) - 2} more)" if len(names) > 2 else "")

    def meta(self) -> dict:
        """What the results document records about where the submission came from."""
        out = {"student": self.student, "entry": one_line(self.label, 200)}
        if self.lms:
            out.update(lms=self.lms, lms_id=self.lms_id, late=self.late)
        return out


def original_name(name: str) -> tuple[str, int]:
    """Canvas's original file name without a re-upload suffix, and that suffix's number (0: none, -1: a UUID)."""
    found = EXTENSION.search(name)
    ext = found.group(0) if found else ""
    base = name[: len(name) - len(ext)] if ext else name
    match = REUPLOAD.search(base)
    if not match or match.start() == 0:
        return name, 0
    number = int(match.group(1)) if match.group(1).isdigit() else -1
    return base[: match.start()] + ext, number


def _canvas(groups: dict, path: Path, match: re.Match, attachment: int, name: str) -> None:
    uid, who, late = match["uid"], match["name"], bool(match["late"])
    if late and not who and not uid.lower().startswith("anon_"):
        # only an anonymous file lacks the name, so this "late" IS the name: a student whose sortable name is
        # "late" ("late_12_34_x.py"), on time
        who, late = match["late"], False
    student = f"{who}_{uid}" if who else uid
    group = groups.setdefault(("canvas", uid), {"student": student, "files": {}, "late": False})
    group["late"] |= late
    group["files"].setdefault(name, []).append((attachment, path))


def _canvas_entries(groups: dict) -> list[Entry]:
    entries = []
    for (lms, uid), group in groups.items():
        if lms != "canvas":
            continue
        parts = []
        for name, uploads in sorted(group["files"].items()):
            uploads.sort()
            _, newest = uploads[-1]
            label = newest.name + (f", newest of {len(uploads)} uploads" if len(uploads) > 1 else "")
            parts.append(Part(newest, name, label))
        entries.append(Entry(group["student"], parts[0].path, "canvas", uid, parts, group["late"]))
    return entries


def _moodle_entries(groups: dict) -> list[Entry]:
    return [Entry(group["student"], group["parts"][0].path, "moodle", uid, sorted(group["parts"], key=str))
            for (lms, uid), group in groups.items() if lms == "moodle"]


def _top_level(entry: Path) -> list[tuple[str, bool]]:
    """(name, is a folder) of what a folder or a zip holds at its top, or inside its one folder if that is all it
    holds (a download unzipped, or zipped again, into a folder of its own). Names only: nothing is read."""
    if entry.is_dir():
        listing = [(p.name, p.is_dir()) for p in entry.iterdir() if not p.name.startswith(".")]
        if len(listing) == 1 and listing[0][1]:
            return [(p.name, p.is_dir()) for p in (entry / listing[0][0]).iterdir() if not p.name.startswith(".")]
        return listing
    try:
        with zipfile.ZipFile(entry) as zf:
            paths = [PurePosixPath(n).parts for n in zf.namelist()]
    except (OSError, zipfile.BadZipFile, ValueError):
        return []  # collect() says what is wrong with it
    paths = [p for p in paths if p and not p[0].startswith((".", "__MACOSX"))]
    if len({p[0] for p in paths}) == 1 and all(len(p) > 1 for p in paths):
        paths = [p[1:] for p in paths]  # everything in one folder
    return sorted({(p[0], len(p) > 1) for p in paths if p})


def _many_students(entry: Path) -> str | None:
    """Why ``entry`` is a whole LMS download rather than one student's submission: most of what it holds at its
    top is named the way Canvas or Moodle name a student's files, for more than one student. None otherwise."""
    top = _top_level(entry)
    students: dict[str, set[str]] = {"Canvas": set(), "Moodle": set()}
    for name, folder in top:
        if folder and (m := MOODLE_FOLDER.match(name)):
            students["Moodle"].add(m["uid"])
        elif not folder and (m := MOODLE_FILE.match(name)):
            students["Moodle"].add(m["uid"])
        elif not folder and (m := CANVAS_FILE.match(name) or CANVAS_ENTRY.match(name)):
            students["Canvas"].add(m["uid"].lower())
    lms, uids = max(students.items(), key=lambda item: len(item[1]))
    named = sum(1 for name, folder in top if MOODLE_FOLDER.match(name) or MOODLE_FILE.match(name)
                or CANVAS_FILE.match(name) or CANVAS_ENTRY.match(name))
    if len(uids) < 2 or named * 2 <= len(top):  # a strict majority: a student's own "2024_01_notes.txt" is not one
        return None
    if entry.is_dir():
        return (f"holds a {lms} download of {len(uids)} students' submissions, not one student's: move what it "
                f"holds up into the submissions folder (each student then gets a row), or grade it as the "
                f"submissions folder itself")
    return (f"a {lms} download of {len(uids)} students' submissions, still zipped: unzip it into the submissions "
            f"folder (each student then gets a row), or grade the unzipped folder; it is not graded as one student")


def _classify(entry: Path, groups: dict, skipped: dict[str, str]) -> Entry | None:
    """A plain entry, or None when the entry joined an LMS group (or was skipped)."""
    name = entry.name
    if not entry.is_symlink() and entry.is_dir() and (m := MOODLE_FOLDER.match(name)):
        group = groups.setdefault(("moodle", m["uid"]), {"student": f"{m['name']}_{m['uid']}", "parts": []})
        group["parts"].append(Part(entry, None, name))
        return None
    if entry.is_symlink() or not entry.is_file():
        return _plain(entry, skipped)
    if m := MOODLE_FILE.match(name):
        group = groups.setdefault(("moodle", m["uid"]), {"student": f"{m['name']}_{m['uid']}", "parts": []})
        group["parts"].append(Part(entry, m["file"], name))
        return None
    if m := CANVAS_FILE.match(name):
        original, _ = original_name(m["file"])
        _canvas(groups, entry, m, int(m["att"]), original)
        return None
    if m := CANVAS_ENTRY.match(name):
        _canvas(groups, entry, m, 0, f"{m['file'].lower()}.html")
        return None
    if entry_kind(entry) == "unsupported":
        skipped[name] = NOT_A_SUBMISSION
        return None
    return _plain(entry, skipped)


def _plain(entry: Path, skipped: dict[str, str]) -> Entry | None:
    """One student's entry, unless it is a whole class's download (skipped, with what to do instead)."""
    if not entry.is_symlink() and entry_kind(entry) in ("folder", "zip") and (why := _many_students(entry)):
        skipped[entry.name] = why
        return None
    return Entry(student_id(entry), entry)


def scan(submissions: Path, out: Path, skipped: dict[str, str] | None = None) -> dict[str, list[Entry]]:
    """Student id -> the entries with that id, in any case (more than one is a duplicate); skips dot-names and OUT
    itself. A regular file that is neither a supported archive nor an LMS upload goes to ``skipped`` (name ->
    reason)."""
    out_resolved = out.resolve()
    skipped = {} if skipped is None else skipped
    groups: dict[tuple[str, str], dict] = {}
    entries: list[Entry] = []
    for entry in sorted(submissions.iterdir()):
        if entry.name.startswith(".") or entry.resolve() == out_resolved:
            continue
        plain = _classify(entry, groups, skipped)
        if plain is not None:
            entries.append(plain)
    found: dict[str, list[Entry]] = {}
    # ids that differ only in case are one id: on macOS's and Windows's file systems OUT/Alice and OUT/alice are one
    # folder, where one student's results would overwrite the other's (the first spelling met names the row)
    spelled: dict[str, str] = {}
    for entry in entries + _canvas_entries(groups) + _moodle_entries(groups):
        entry.student = encodable(entry.student)  # a folder named with bytes that are not UTF-8 still gets a row
        found.setdefault(spelled.setdefault(entry.student.casefold(), entry.student), []).append(entry)
    return dict(sorted(found.items()))


def report_skipped(skipped: dict[str, str], path: Path, stream=None) -> None:
    """``path`` (OUT/skipped.txt) lists the entries that got no row (removed when there are none); a warning each."""
    if not skipped:
        path.unlink(missing_ok=True)
        return
    # the names are whoever made the entries': escaped and cut short, on the terminal and in the file alike
    lines = sorted((escaped(name, 200), one_line(reason, 500)) for name, reason in skipped.items())
    path.write_text("".join(f"{name}: {reason}\n" for name, reason in lines), encoding="utf-8")
    stream = stream or sys.stderr
    for name, reason in lines:
        stream.write(f"warning: skipped {name}: {reason} (listed in {path})\n")
    stream.flush()
