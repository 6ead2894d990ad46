"""grader/install_bytecode.py: the setup writes the bytecode of what grading imports, even where
PYTHONDONTWRITEBYTECODE is set, so that each grading process does not compile torch again."""

import os
import subprocess
import sys

import pytest

from grader import install_bytecode


def test_the_groups_add_up_in_order_and_once_each():
    base = install_bytecode.modules("")
    assert base[0] == "torch" and "pytest" in base
    both = install_bytecode.modules("dev, dask")
    assert both[:len(base)] == base and "distributed" in both and "torch._dynamo" in both
    assert len(both) == len(set(both))
    assert install_bytecode.modules("bench,dev").count("matplotlib.pyplot") == 1
    assert install_bytecode.modules("no-such-group") == base


def test_bytecode_is_written_though_the_environment_forbids_it(tmp_path):
    (tmp_path / "lessonpkg").mkdir()
    (tmp_path / "lessonpkg" / "__init__.py").write_text("VALUE = 1\n")
    (tmp_path / "broken.py").write_text("raise ImportError('a package that fails does not stop the others')\n")
    cmd, env = install_bytecode.command(sys.executable, "")
    cmd = cmd[:3] + ["broken", "lessonpkg"]  # the import loop, on two modules of ours
    full = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tmp_path)}
    subprocess.run(cmd, env=full, check=True, timeout=60)
    assert not list(tmp_path.rglob("*.pyc")), "the control: with the variable set, nothing is written"
    subprocess.run(cmd, env={**full, **env}, check=True, timeout=60)
    assert list((tmp_path / "lessonpkg" / "__pycache__").glob("__init__.*.pyc"))


def test_the_listed_files_are_compiled_in_parallel_without_running_them(tmp_path):
    """Where the lock fits the machine, the setup compiles the files ``make lock`` listed: each gets its bytecode
    (a timestamp .pyc, as an import writes it) though PYTHONDONTWRITEBYTECODE and SOURCE_DATE_EPOCH are set, and
    no module runs (one that raises on import is compiled all the same)."""
    site = tmp_path / "site"
    (site / "pkg").mkdir(parents=True)
    for k in range(7):
        (site / "pkg" / f"m{k}.py").write_text(f"VALUE = {k}\n" * (k + 1))
    (site / "loud.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\nraise SystemExit(3)\n")
    files = ["loud.py", *(f"pkg/m{k}.py" for k in range(7)), "pkg/missing.py"]
    cmd, env = install_bytecode.command(sys.executable, "", files=files, scratch=tmp_path)
    script = cmd[2].replace("sysconfig.get_paths()['purelib']", repr(str(site)))  # our folder stands for site-packages
    full = {**os.environ, **env, "PYTHONDONTWRITEBYTECODE": "1", "SOURCE_DATE_EPOCH": "1"}
    subprocess.run([cmd[0], "-c", script, *cmd[3:]], env=full, check=True, timeout=60)
    assert not (tmp_path / "ran").exists(), "a listed module was run, not only compiled"
    written = sorted(p.name.split(".")[0] for p in site.rglob("*.pyc"))
    assert written == ["loud", *(f"m{k}" for k in range(7))]
    for pyc in site.rglob("*.pyc"):
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0, f"{pyc.name}: not a timestamp .pyc"


def test_the_list_is_used_only_with_the_lock_it_was_made_from(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.0\n")
    listing = tmp_path / "requirements.imports"
    listing.write_text(install_bytecode.LIST_HEADER.format(digest=install_bytecode.lock_digest(lock))
                       + "[]\ntorch/__init__.py\n[dev]\nnbgrader/__init__.py\n[dask]\ndistributed/__init__.py\n")
    assert install_bytecode.listed("", lock, listing) == ["torch/__init__.py"]
    assert install_bytecode.listed("dev,dask", lock, listing) == ["torch/__init__.py", "nbgrader/__init__.py",
                                                                 "distributed/__init__.py"]
    lock.write_text("numpy==2.1\n")  # make lock ran again, and the list was not written with it
    assert install_bytecode.listed("", lock, listing) is None
    assert install_bytecode.listed("", lock, tmp_path / "none") is None


def test_the_repositorys_list_fits_its_lock():
    from grader import lockfile

    files = install_bytecode.listed("", lockfile.LOCK)
    assert files and files[0] < files[-1] and any(f.startswith("torch/") for f in files)


@pytest.mark.slow
def test_the_list_names_what_the_student_set_imports_in_this_venv():
    """The "" group of requirements.imports is what importing the student's packages loads here (the tested venv:
    the lock's versions), so the setup compiles all of it and nothing else."""
    from pathlib import Path

    from grader import lockfile

    fresh = install_bytecode.record(Path(sys.executable), lockfile.LOCK, only=("",))
    section = fresh.split("[]\n", 1)[1].split("\n[", 1)[0].split()
    assert section == install_bytecode.listed("", lockfile.LOCK)


def test_the_students_copy_keeps_their_group_and_fits_the_same_lock(tmp_path):
    """The release gets the student's group only, under a header that names nothing the release leaves out; the
    setup still takes it as made with the (copied) lock."""
    from grader import lockfile

    text = install_bytecode.LIST.read_text(encoding="utf-8")
    copy = tmp_path / install_bytecode.LIST.name
    copy.write_text(install_bytecode.student_list(text), encoding="utf-8")
    assert install_bytecode.listed("", lockfile.LOCK, copy) == install_bytecode.listed("", lockfile.LOCK)
    assert install_bytecode.listed("dev", lockfile.LOCK, copy) == install_bytecode.listed("", lockfile.LOCK)
    header = [line for line in copy.read_text().splitlines() if line.startswith("#")]
    assert not any("make lock" in line or "lockfile" in line for line in header), header
