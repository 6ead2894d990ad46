"""Tests of llm_basics.corpus (training text with no download)."""

import pytest

from llm_basics.corpus import LESSON_README, lesson_text, stdlib_files, stdlib_text


def test_lesson_text_is_the_lesson_readme():
    text = lesson_text()
    assert LESSON_README.name == "README.md"
    assert LESSON_README.parent.name == "lesson-1-llm-basics"
    assert text == LESSON_README.read_text(encoding="utf-8")
    assert len(text) > 5000
    assert "BPE" in text and "attention" in text


def test_stdlib_text_size_and_determinism():
    text = stdlib_text(200_000)
    size = len(text.encode("utf-8"))
    assert 199_996 <= size <= 200_000  # cut at a character boundary
    assert stdlib_text(200_000) == text
    assert "def " in text and "import " in text


def test_stdlib_text_smaller_is_prefix():
    assert stdlib_text(200_000).startswith(stdlib_text(12_345))
    assert stdlib_text(0) == ""


def test_stdlib_files_sorted_and_no_third_party():
    files = []
    for path in stdlib_files():
        files.append(path)
        if len(files) == 200:
            break
    assert files, "expected some standard-library .py files"
    assert all(p.suffix == ".py" for p in files)
    assert not any("site-packages" in p.parts for p in files)
    top = [p for p in files if p.parent == files[0].parent]
    assert [p.name for p in top] == sorted(p.name for p in top)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None, True])
def test_stdlib_text_bad_size(bad):
    with pytest.raises(ValueError, match="n_bytes"):
        stdlib_text(bad)
