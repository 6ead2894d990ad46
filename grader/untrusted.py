"""Student text as data: one helper per format it lands in, used by every report.

Text that came from a submission (an exception's message, printed output, a file or folder name, a student id
taken from a download) is untrusted: the student has read this module. Each helper makes it render as the
characters it holds, never as markup, a link, a terminal command or a spreadsheet formula:

==================  =====================================================================================
``printable``       a terminal, a log, Gradescope's ``text`` output: control characters (ESC and the rest of
                    C0/C1, DEL, Unicode's bidirectional overrides) are shown as ``\\x1b``-style escapes
``one_line``        the same, on one line and cut short (a table cell, a progress line, a gradebook reason)
``escaped``         a name on one line: newline and tab shown as escapes too, cut short
``md_code``         Markdown: an inline code span (see below)
``html_text``       HTML: ``&``, ``<``, ``>`` and quotes as entities, control characters shown as escapes
``csv_cell``        CSV: no control characters, and a cell that could start a formula gets a leading ``'``
``encodable``       a name kept as a name (a student id): only what UTF-8 cannot hold is escaped
==================  =====================================================================================

Why a code span for Markdown, rather than backslash escapes: inside a code span every CommonMark renderer
(GitHub's, Python-Markdown, Jupyter's, an LMS's) shows the characters literally: no emphasis, no link, no
autolink, no raw HTML (``<`` becomes ``&lt;``). Which characters a backslash may escape differs from one
renderer to the next, and an escape that one renderer does not know is shown as a stray backslash by it and
ignored by another. The span's fence is one backtick longer than the longest run of backticks in the text, so
the text cannot close it; the text is on one line, so it cannot end the list item or the table row it is in.

``csv_cell`` follows OWASP's guidance on CSV injection: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is read as a formula by Excel, LibreOffice and Google Sheets, so it gets a leading ``'``;
a number (``-1.5``, ``3e-05``) is not a formula and is written as it is, so the numbers we write stay numbers.
"""

from __future__ import annotations

import html
import re

CUT = "..."
# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069), which reorder what a reader sees ("Trojan source"); also the zero-width
# and byte-order marks, which hide characters; and lone surrogates, which is how Python holds the bytes of a file
# name that are not UTF-8 (a tar member or a folder named with a 0xFF byte): no UTF-8 file or terminal can take
# them, so writing one raised, and a batch stopped at the first such name
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
CONTROL_OR_SPACE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _shown(match: re.Match) -> str:
    """A control character as the escape Python would write for it: ``\\x1b``, ``\\u202e``."""
    return repr(match.group(0))[1:-1]


def encodable(text: str) -> str:
    """``text`` that UTF-8 can encode: a lone surrogate (a byte of a file name that was not UTF-8) becomes its
    escape (``\\udcff``), everything else stays as it is. For a name kept as a name (a student id, a folder in
    OUT), where ``printable`` would also change control characters."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


def clip(text: str, limit: int | None) -> str:
    """``text`` cut to at most ``limit`` characters (``...`` at the end when cut); None keeps it whole."""
    text = str(text)
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT))].rstrip() + CUT


def printable(text: str, limit: int | None = None) -> str:
    """``text`` with every control character but newline and tab shown as its escape, cut to ``limit``."""
    return clip(CONTROL.sub(_shown, str(text).replace("\r\n", "\n")), limit)


def one_line(text: str, limit: int | None = None) -> str:
    """``printable`` on one line: newlines, tabs and runs of spaces become one space."""
    return clip(" ".join(CONTROL.sub(_shown, str(text).replace("\r\n", "\n")).split()), limit)


def escaped(text: str, limit: int | None = None) -> str:
    """A name on one line as the characters it holds: every control character, newline and tab included, shown as
    its escape (``one_line`` would turn a newline into a space), cut to ``limit``."""
    return clip(CONTROL_OR_SPACE.sub(_shown, str(text)), limit)


def md_code(text: str, limit: int | None = None) -> str:
    """One line of untrusted text as a Markdown code span (empty text: nothing)."""
    line = one_line(text, limit)
    if not line:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""  # a span may not start or end with its fence
    return f"{fence}{pad}{line}{pad}{fence}"


def html_text(text: str, limit: int | None = None) -> str:
    """Untrusted text for HTML, in an element or an attribute value."""
    return html.escape(printable(text, limit), quote=True)


def csv_cell(value):
    """A value for a CSV cell: numbers as they are; text without control characters (tab, carriage return and
    newline included: they are shown as escapes) and, when it could start a formula, behind a ``'``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = CONTROL_OR_SPACE.sub(_shown, str(value))
    if NUMBER.fullmatch(text):
        return text
    if text.startswith(FORMULA_START) or str(value).startswith(FORMULA_START):
        return "'" + text
    return text


def csv_row(row: dict) -> dict:
    """``csv_cell`` of every value of a row (for ``csv.DictWriter``)."""
    return {key: csv_cell(value) for key, value in row.items()}
