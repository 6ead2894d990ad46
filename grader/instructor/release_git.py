"""``python -m grader release --git``: the student release as a repository of its own, with its first commit.

The release folder is written whole by ``grader.instructor.release`` (a rebuild replaces it, ``.git`` included), so
each ``--git`` release starts a fresh history: push it to a new, empty repository that students clone (``git remote
add origin URL && git push -u origin main``). Where git has no user name or e-mail configured, the commit is made
as "Course staff"; ``GIT_AUTHOR_NAME`` and the other git variables apply as usual.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

BRANCH = "main"
MESSAGE = "Lesson 1: LLM basics (the student release)"
FALLBACK_IDENTITY = ("Course staff", "staff@example.invalid")


class GitError(RuntimeError):
    """git is missing, or one of its commands failed: the message says which and why."""


def _git(folder: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"git {args[0]} failed: {exc}") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {(done.stderr or done.stdout).strip()[:500]}")
    return done.stdout.strip()


def first_commit(folder: Path) -> str:
    """Make ``folder`` a new git repository on branch ``main`` holding all its files in one commit; returns the
    commit's id."""
    if shutil.which("git") is None:
        raise GitError("git is not installed: install it, or leave out --git")
    if (folder / ".git").exists():
        raise GitError(f"{folder} is already a git repository")
    _git(folder, "init", "--quiet", "--initial-branch", BRANCH)
    identity = []
    for key, value in zip(("user.name", "user.email"), FALLBACK_IDENTITY):
        try:
            _git(folder, "config", key)
        except GitError:  # not set anywhere: this repository gets one, so that the commit can be made
            identity += ["-c", f"{key}={value}"]
    _git(folder, "add", "--all")
    _git(folder, *identity, "commit", "--quiet", "--message", MESSAGE)
    return _git(folder, "rev-parse", "HEAD")
