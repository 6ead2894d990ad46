"""grader/install_bytecode.py: the setup writes the bytecode of what grading imports, even where
PYTHONDONTWRITEBYTECODE is set, so that each grading process does not compile torch again."""

import os
import subprocess
import sys

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
