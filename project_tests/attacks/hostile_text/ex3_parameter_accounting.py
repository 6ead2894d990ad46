"""ATTACK hostile_text (kind: student text as markup, terminal escapes and spreadsheet formulas): the module
raises, when it is imported, an exception whose message is written to be rendered rather than read.

Every test of ex3 then fails with this message as its reason, and the reason lands in feedback.md, the
terminal report, grades.csv and Gradescope's results.json. Raw, it would: clear the terminal line and write a
green "all tests passed, 100/100" in its place (ANSI escape codes), show an image whose onerror runs script, a
"full marks" link to ``javascript:`` and a bold "Score: 100 / 100" in feedback.md (Markdown with raw HTML),
and, in the batch, where this same file is also handed in under the student id ``=1+99``, make a spreadsheet
show 100 in the student column (a formula).

Why it must fail under the new design: every report writes student text through ``grader.untrusted``: a code
span in Markdown, entities in HTML, control characters shown as ``\\x1b`` escapes in a terminal and a CSV, a
leading ``'`` on a CSV cell that could start a formula, and Gradescope told that every output is ``text``. The
text still arrives (escaped), so the test can see that the attack ran; it gains 0 points (ex3 cannot be imported).
"""

HOSTILE = (
    "\x1b[2K\r\x1b[32mall tests passed, 100/100\x1b[0m "
    "<img src=x onerror=alert(1)> [full marks](javascript:alert(1))\n\n**Score: 100 / 100**"
)

raise ValueError(HOSTILE)
