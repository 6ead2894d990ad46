"""Words worth a person's look: names in a submission's exercise files that exercise code never needs.

A match decides nothing: the batch grader writes it into the gradebook (``review``) so that a person reads the
submission. Grades never depend on it.
"""

from __future__ import annotations

import re

# Names that exercise code has no honest use for: they reach into the grader, pytest or the process. A match is
# not proof of anything (see the docstring).
# A pattern that starts with a literal lets the search skip through the text, so the word boundary before a name
# is a look-behind after it: "grader(?<!\wgrader)" is "\bgrader" at a fifteenth of the cost.
SUSPICIOUS = {
    "the grader": re.compile(r"grader(?<!\wgrader)\b|_pytest|pytest(?<!\wpytest)\b|pluggy"),
    "sys.modules": re.compile(r"sys\.modules"),
    "/proc": re.compile(r"/proc/"),
    "raw file descriptors": re.compile(r"os\.(write|dup2?|fdopen)\b"),
    "other frames": re.compile(r"sys\._getframe|inspect\.(stack|currentframe)|gc\.get_(objects|referrers)"),
    "the test files": re.compile(r"tests(?<!\wtests)[/\\]|test_ex(?<!\wtest_ex)\d|points\.json"),
    "ctypes": re.compile(r"ctypes(?<!\wctypes)\b"),
    # the names above, hidden: code made at run time from text (exec(base64.b64decode(...)) passed every check)
    "code made at run time": re.compile(r"exec(?<![\w.]exec)\s*\(|eval(?<![\w.]eval)\s*\(|"
                                        r"compile(?<![\w.]compile)\s*\(|__import__|importlib|base64|marshal"),
}


def suspicious(files: dict[str, bytes]) -> list[str]:
    """``["ex2_topk_attention.py: sys.modules, /proc"]`` for files that mention what exercise code never needs."""
    found = []
    for name, data in sorted(files.items()):
        text = data.decode("utf-8", errors="replace")
        hits = [label for label, pattern in SUSPICIOUS.items() if pattern.search(text)]
        if hits:
            found.append(f"{name}: {', '.join(hits)}")
    return found
