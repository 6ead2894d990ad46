"""llm_basics.threads picks torch's thread count from the size of the work; the ex4 plot explains a slope above 2."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from grader.grading import REPO_ROOT
from llm_basics import threads
from llm_basics.model import ModelConfig


def test_small_work_gets_one_thread_whatever_the_machine():
    step3 = threads.matmul_flops(16 * 64, 64, 512)  # the walkthrough's largest product
    assert step3 == 2 * 1024 * 64 * 512
    for cores, load in ((2, 0.0), (16, 0.0), (2, 9.0)):
        assert threads.threads_for(step3, cores=cores, load=load) == 1


def test_big_work_gets_the_idle_cores():
    big = threads.matmul_flops(4096, 4096, 4096)
    assert threads.threads_for(big, cores=8, load=0.0) == 8
    assert threads.threads_for(big, cores=8, load=5.2) == 3
    assert threads.threads_for(big, cores=2, load=9.0) == 1  # a busy laptop: extra threads would only wait
    assert threads.threads_for(big, cores=1, load=0.0) == 1


def test_use_threads_for_sets_torch_and_keeps_an_explicit_choice(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert threads.use_threads_for(1e6) == 1 and torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.use_threads_for(1e6) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ex4():
    spec = importlib.util.spec_from_file_location("reference_ex4", REPO_ROOT / "solutions" / "ex4_scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slope_note_gives_the_measured_speeds(ex4):
    cfg = ModelConfig(d_model=64, n_heads=4)
    lengths = [384, 768, 1536]
    flops = [ex4.block_flops(cfg, t)["total"] for t in lengths]
    speeds = [3e9, 2e9, 1e9]  # FLOP/s falling as T grows: the time grows faster than the FLOPs
    rows = [(t, f / v, f) for t, f, v in zip(lengths, flops, speeds)]
    p_time, _ = ex4.fit_power_law(lengths, [s for _, s, _ in rows])
    note = ex4.slope_note(cfg, 1, rows, p_time)
    assert p_time > 2
    assert "3.0 GFLOP/s at T = 384" in note and "1.0 GFLOP/s at T = 1536" in note
    assert "36 MB at T = 1536" in note and "cache" in note and f"T^{p_time:.2f}" in note
