"""grader.untrusted: student text rendered as the characters it holds, in every format it lands in (cheap)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from grader.untrusted import clip, csv_cell, csv_row, html_text, md_code, one_line, printable

ESC = "\x1b[2K\x1b[32m"
BIDI = "\u202e"  # right-to-left override ("Trojan source")


def test_clip_cuts_to_the_limit_and_says_so():
    assert clip("abcdef", 10) == "abcdef"
    assert clip("abcdef", None) == "abcdef"
    assert clip("abcdefghij", 6) == "abc..." and len(clip("x" * 500, 300)) == 300


def test_printable_shows_control_characters_as_escapes_and_keeps_newlines_and_tabs():
    text = printable(f"{ESC}ok\r\nline2\tend\rback\x00\x7f\x85{BIDI}zero\u200bwidth\ufeff")
    assert "\x1b" not in text and "\r" not in text and BIDI not in text and "\u200b" not in text
    assert "\\x1b[2K\\x1b[32mok\nline2\tend\\rback\\x00\\x7f\\x85\\u202ezero\\u200bwidth\\ufeff" == text


def test_printable_keeps_ordinary_unicode():
    assert printable("café – 東京 ✓") == "café – 東京 ✓"


def test_one_line_joins_lines_and_cuts():
    assert one_line("a\n\n  b\tc\r\nd") == "a b c d"
    assert one_line(f"{ESC}x") == "\\x1b[2K\\x1b[32mx"
    assert one_line("word " * 100, 20) == "word word word wo..."


@pytest.mark.parametrize("text, span", [
    ("plain", "`plain`"),
    ("a `tick` here", "``a `tick` here``"),
    ("a ``` fence", "````a ``` fence````"),
    ("`starts", "`` `starts ``"),
    ("ends`", "`` ends` ``"),
    ("", ""),
])
def test_md_code_fence_is_longer_than_any_run_of_backticks(text, span):
    assert md_code(text) == span


def test_md_code_is_one_line_with_no_control_characters():
    span = md_code(f"x\n\n**Score: 100**\n# heading {ESC}{BIDI}")
    assert "\n" not in span and "\x1b" not in span and BIDI not in span
    assert span == "`x **Score: 100** # heading \\x1b[2K\\x1b[32m\\u202e`"
    assert len(md_code("y" * 1000, 50)) == 52  # the limit is on the text; the fence comes on top


def test_md_code_renders_as_text_in_markdown():
    """Positive control and check with a real CommonMark renderer: raw, the text is an image and a bold score."""
    mistune = pytest.importorskip("mistune")
    hostile = "<img src=x onerror=alert(1)> [full marks](javascript:alert(1)) **Score: 100** ``` ` "
    raw = mistune.html(hostile)
    assert "<img" in raw and "<strong>" in raw, "positive control: the raw text is live markup"
    page = mistune.html(f"- {md_code(hostile)}\n")
    assert "<img" not in page and "<strong>" not in page and "<a " not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_html_text_escapes_markup_quotes_and_controls():
    assert html_text('<a href="x" onclick=\'y\'>&') == "&lt;a href=&quot;x&quot; onclick=&#x27;y&#x27;&gt;&amp;"
    assert html_text(f"{ESC}{BIDI}") == "\\x1b[2K\\x1b[32m\\u202e"
    assert html_text("z" * 100, 10) == "zzzzzzz..."


@pytest.mark.parametrize("value", ["=1+99", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "-", "=", "-inf", "+5",
                                   "=HYPERLINK(\"http://x\")", "-1e5x", "--1"])
def test_csv_cell_neutralises_what_could_start_a_formula(value):
    cell = csv_cell(value)
    assert cell.startswith("'"), f"{value!r} -> {cell!r}"
    assert not any(ch in cell for ch in "\t\r\n")


@pytest.mark.parametrize("value", ["0", "100", "-1", "-1.5", "3.25", ".5", "-.5", "1e5", "3e-05", "-2.5E+10",
                                   "7.", "0.000001"])
def test_csv_cell_numbers_stay_numbers(value):
    assert csv_cell(value) == value
    float(csv_cell(value))


@pytest.mark.parametrize("value", [0, -1, -1.5, 3e-05, 2.0, True, None])
def test_csv_cell_non_text_values_pass_through(value):
    assert csv_cell(value) is value


def test_csv_cell_text_keeps_its_characters_but_controls():
    assert csv_cell("Jane Doe, 2nd") == "Jane Doe, 2nd"
    assert csv_cell("a\tb\nc\rd\x1b[0m") == "a\\tb\\nc\\rd\\x1b[0m"
    assert csv_cell(f"{BIDI}=1+1") == "\\u202e=1+1"  # shown as an escape, so it starts with a backslash
    assert csv_cell("1-2") == "1-2" and csv_cell("ok=1") == "ok=1"  # only a leading character matters


def test_csv_row_written_by_a_csv_writer_has_no_formula_and_numbers_intact():
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["student", "score", "delta", "reason"])
    writer.writerow(csv_row({"student": "=1+99", "score": "-1.5", "delta": -2, "reason": "\x1b[2Kall passed"}))
    line = buffer.getvalue().strip()
    assert line == "'=1+99,-1.5,-2,\\x1b[2Kall passed"
    row = next(csv.reader([line]))
    assert float(row[1]) == -1.5 and float(row[2]) == -2


def test_bytes_that_are_not_utf8_are_shown_never_raised(tmp_path):
    """A file name's byte that is not UTF-8 reaches Python as a lone surrogate (tarfile, os.scandir): UTF-8 cannot
    encode it (the positive control), so every helper shows it as its escape, ``encodable`` keeps a name a name,
    and a results document holding one is written and reads back as the same string."""
    from grader import results, untrusted

    name = "bob\udcff"
    with pytest.raises(UnicodeEncodeError):
        name.encode("utf-8")
    for shown in (untrusted.printable(name), untrusted.one_line(name), untrusted.escaped(name),
                  untrusted.csv_cell(name), untrusted.html_text(name), untrusted.md_code(name),
                  untrusted.encodable(name)):
        assert "\\udcff" in shown and shown.encode("utf-8"), shown
    assert untrusted.escaped("fake\nann: forged\tline") == "fake\\nann: forged\\tline"
    path = results.write({"reason": f"found {name}"}, tmp_path / "r.json")
    assert json.loads(path.read_bytes().decode("utf-8")) == {"reason": f"found {name}"}
