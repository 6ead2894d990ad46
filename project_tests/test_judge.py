"""The judge's side of the worker: only plain data crosses, student objects stay behind handles, callables
stay in the judge, errors cross as built-in types, limits are the judge's, and the worker is confined."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from grader.worker import wire
from grader.worker.client import RemoteObject, StudentError, WorkerClient, WorkerLimits, WorkerLost, WorkerTimeout
from grader.judge.student import worker_read_paths
from llm_basics.model import ModelConfig, TinyLM, TransformerBlock
from llm_basics.tokenizer import BPETokenizer

REPO = Path(__file__).resolve().parent.parent

STUDENT = '''
import os
import torch


class AlwaysEqual:
    def __eq__(self, other):
        return True


class Agreeable(torch.Tensor):
    pass


def always_equal():
    return AlwaysEqual()


def agreeable():
    return torch.ones(2).as_subclass(Agreeable)


def echo(x):
    return x


def raises(kind):
    raise {"value": ValueError, "key": KeyError, "custom": type("Mine", (LookupError,), {})}[kind]("no")


def count_params(model):
    return sum(p.numel() for p in model.parameters()), type(model).__name__, next(model.parameters()).device.type


def merges(tok):
    return len(tok.merges), tok.encode("hi")


def call_clock(clock, n):
    with torch.no_grad():
        return [clock() for _ in range(n)]


def square_sum(x):
    return (x * x).sum()


def spin():
    while True:
        pass


def nap():
    import time
    time.sleep(30)


def leave():
    os._exit(4)


def cpus():
    return sorted(os.sched_getaffinity(0))


def read(path):
    with open(path) as f:
        return f.read()


def write(path):
    with open(path, "w") as f:
        f.write("x")
    return "written"


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1
        return self.n
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    target = root / "submission"
    target.mkdir()
    (target / "ex9_probe.py").write_text(textwrap.dedent(STUDENT))
    c = WorkerClient(target, root / "work", limits=WorkerLimits(cpu_seconds=1.0, wall_seconds=20.0),
                     read_paths=worker_read_paths(target))
    yield c
    c.close()


@pytest.fixture
def ex(client):
    client.begin_test()
    return client.module("ex9_probe")


def test_values_come_back_as_plain_data(ex):
    got = ex.always_equal()
    assert isinstance(got, RemoteObject) and got != 1  # an object of the student's is a handle, never equal
    t = ex.agreeable()
    assert type(t) is torch.Tensor and torch.equal(t, torch.ones(2))  # a subclass comes back a plain tensor
    value = {"a": [1, 2.5, None, True], (1, 2): b"\x00", "t": torch.arange(6, dtype=torch.int16).reshape(2, 3)}
    back = ex.echo(value)
    assert back.keys() == value.keys() and back["a"] == value["a"] and back[(1, 2)] == b"\x00"
    assert torch.equal(back["t"], value["t"]) and back["t"].dtype == torch.int16
    for dtype in (torch.bfloat16, torch.bool, torch.float64, torch.complex64):
        x = torch.ones(3, dtype=dtype)
        assert torch.equal(ex.echo(x), x) and ex.echo(x).dtype == dtype
    assert ex.echo(torch.empty(0, 4)).shape == (0, 4)


def test_errors_cross_as_builtin_types_with_the_students_frames(ex):
    with pytest.raises(ValueError) as info:
        ex.raises("value")
    assert isinstance(info.value, StudentError) and info.value.where().startswith(" (ex9_probe.py line")
    with pytest.raises(KeyError):
        ex.raises("key")
    with pytest.raises(LookupError) as info:  # a class of the student's: its nearest built-in base
        ex.raises("custom")
    assert info.value.student_type == "Mine"


def test_lesson_objects_are_rebuilt_in_the_worker(ex):
    cfg = ModelConfig(vocab_size=30, context_length=8, d_model=8, n_heads=2, n_layers=2)
    assert ex.count_params(TinyLM(cfg)) == (sum(p.numel() for p in TinyLM(cfg).parameters()), "TinyLM", "cpu")
    with torch.device("meta"):
        block = TransformerBlock(cfg)
    assert ex.count_params(block)[1:] == ("TransformerBlock", "meta")
    tok = BPETokenizer.train("hi hi hi there", vocab_size=260)
    assert ex.merges(tok) == (len(tok.merges), tok.encode("hi"))


def test_callables_stay_in_the_judge_with_the_workers_grad_mode(ex):
    seen = []

    def clock():
        seen.append(torch.is_grad_enabled())
        return float(len(seen))

    assert ex.call_clock(clock, 3) == [1.0, 2.0, 3.0] and seen == [False, False, False]


def test_gradients_are_computed_where_the_function_runs(ex):
    x = torch.tensor([1.0, -2.0, 3.0])
    (grad,) = ex.square_sum.backward((x,), weights=[torch.tensor(1.0)])
    assert torch.equal(grad, 2 * x)


def test_objects_of_the_student_stay_in_the_worker(ex):
    counter = ex.Counter()
    assert (counter.bump(), counter.bump(), counter.n) == (1, 2, 2)
    with pytest.raises(AttributeError):
        counter.n = 5


@pytest.mark.slow
def test_limits_cost_the_test_and_a_new_worker_serves_the_next(client, ex):
    with pytest.raises(WorkerTimeout, match="CPU"):  # its own CPU time, however busy the machine is
        ex.spin()
    with pytest.raises(WorkerTimeout, match="CPU"):  # the rest of the test fails the same way
        ex.echo(1)
    client.begin_test()
    ex = client.module("ex9_probe")
    client.limits.wall_seconds = 1.0  # sleeping uses no CPU: only the backstop stops it
    try:
        with pytest.raises(WorkerTimeout, match="wall-clock") as info:
            ex.nap()
    finally:
        client.limits.wall_seconds = 20.0
    assert info.value.backstop
    client.begin_test()
    ex = client.module("ex9_probe")
    with pytest.raises(WorkerLost, match="exit code 4"):
        ex.leave()
    client.begin_test()
    assert client.module("ex9_probe").echo(7) == 7


def test_the_worker_is_confined(client, ex, tmp_path):
    protections = client.protections
    if not protections.get("filesystem"):
        pytest.skip(f"Landlock is not available here: {protections}")
    with pytest.raises(PermissionError):
        ex.read(str(REPO / "tests" / "points.json"))
    with pytest.raises(PermissionError):
        ex.write(str(tmp_path / "outside.txt"))
    assert ex.write(str(client.private / "inside.txt")) == "written"
    assert protections.get("pid_namespace") and protections.get("network")


@pytest.mark.parametrize("header", [
    ["X", "float32", [2], 0, "cpu"],          # 4 bytes of data for 2 floats
    ["X", "object", [1], 0, "cpu"],           # not a dtype
    ["Q", 1],                                 # not a tag
    ["D", "a"],                               # half a dict
    ["H", 1],                                 # a handle is the judge's to accept, not the decoder's
])
def test_the_decoder_refuses_what_is_not_plain_data(header):
    with pytest.raises(wire.WireError):
        wire.Decoder([bytearray(4)]).decode(header)


def test_a_deep_value_is_refused():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = ["L", deep]
    with pytest.raises(wire.WireError):
        wire.Decoder([]).decode(deep)


def test_a_worker_runs_on_the_cpu_its_judge_names(client, ex, tmp_path):
    """A judge and its worker take turns, so they share one CPU (grader.processes.pin_to_cpu)."""
    allowed = sorted(os.sched_getaffinity(0))
    assert ex.cpus() == allowed  # a client that names no CPU leaves the worker where its zygote may run
    for cpu in {allowed[0], allowed[-1]}:
        pinned = WorkerClient(client.target, tmp_path / f"cpu{cpu}", read_paths=worker_read_paths(client.target),
                              cpu=cpu)
        try:
            pinned.begin_test()
            assert pinned.module("ex9_probe").cpus() == [cpu]
        finally:
            pinned.close()


def test_a_batch_spreads_its_judges_over_the_cpus():
    from types import SimpleNamespace

    from grader.batch.scheduler import Batch, Job

    def free(cpus, used):
        running = {i: Job(student=f"s{i}", entry="", cpu=cpu) for i, cpu in enumerate(used)}
        return Batch._free_cpu(SimpleNamespace(cpus=cpus, running=running))

    assert free([0, 1], []) == 0
    assert free([0, 1], [0]) == 1
    assert free([0, 1], [1]) == 0
    assert free([0, 1, 2, 3], [0, 1, 3]) == 2
    assert free([0, 1], [0, 1]) in (0, 1)  # more jobs than CPUs: they share
    assert free([], []) is None  # a platform that cannot say: no pinning


def test_no_descriptor_of_the_judge_reaches_the_worker(ex, tmp_path):
    secret = os.open(tmp_path / "judge-only.txt", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        # the worker was forked before this descriptor existed, and forks close what they inherit anyway
        with pytest.raises(OSError):
            ex.read(f"/proc/self/fd/{secret}")
    finally:
        os.close(secret)


EXAMPLES = """
import sys
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "judge":
    from grader.judge.suite import examples_from_the_tests_alone
    assert examples_from_the_tests_alone()
if sys.argv[3] == "with":
    import lots_of_constants  # noqa: F401 - a module of the judge's that a test never uses
from hypothesis import Phase, given, settings, strategies as st
seen = []
@settings(derandomize=True, database=None, max_examples=30, phases=[Phase.generate])
@given(st.floats(-3.0, 3.0), st.lists(st.integers(1, 10_000), min_size=2, max_size=8, unique=True))
def prop(p, xs):
    seen.append((p, xs))
prop()
print(repr(seen))
"""


def test_a_tests_examples_do_not_depend_on_what_else_the_judge_imported(tmp_path):
    """Hypothesis draws some examples from constants in the source of local modules imported so far. In the judge
    that made a test's examples depend on which other suites ran before it (``--exercise ex4`` alone, a whole
    grading, a batch's warm-up). The judge turns that off: the same examples either way. The control: without it
    importing one more module of constants changes the examples."""
    (tmp_path / "lots_of_constants.py").write_text(
        "FLOATS = [2.75, 1.5, -2.125, 0.3125, 1.0625]\nINTS = [4242, 999, 31, 77, 6001, 13]\n")
    script = tmp_path / "examples.py"
    script.write_text(EXAMPLES)

    def examples(mode: str, imports: str) -> str:
        done = subprocess.run([sys.executable, str(script), str(tmp_path), mode, imports], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert examples("plain", "without") != examples("plain", "with"), "the control: the constants changed nothing"
    assert examples("judge", "without") == examples("judge", "with")


@pytest.mark.slow
def test_the_seeds_a_session_pins_draw_the_examples_derandomize_draws():
    """warm_hypothesis computes each derandomized test's seed once per session: the same examples, in order."""
    from types import SimpleNamespace

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from grader.judge.serve import warm_hypothesis

    seen = []

    def make():
        @settings(derandomize=True, database=None, max_examples=10)
        @given(x=st.integers(), s=st.text(max_size=5))
        def prop(x, s):
            seen.append((x, s))

        return prop

    make()()
    derandomized, seen[:] = list(seen), []
    pinned = make()
    warm_hypothesis([SimpleNamespace(obj=pinned)])
    assert pinned._hypothesis_internal_use_seed is not None, "no seed was pinned"
    pinned()
    assert len(derandomized) == 10 and seen == derandomized

    # a parametrized test keeps Hypothesis's own seed: its pytest plugin mixes each case's node id in
    case = make()
    warm_hypothesis([SimpleNamespace(obj=case, callspec=object()), SimpleNamespace(obj=case)])
    assert case._hypothesis_internal_use_seed is None

    # a test method: the seed goes on its function (a bound method takes no attributes)
    class Tests:
        prop = make()

    warm_hypothesis([SimpleNamespace(obj=Tests().prop)])
    assert Tests.prop._hypothesis_internal_use_seed is not None


def _run_as_pytest_would(test) -> BaseException:
    """Call ``test`` through the plugin's pytest_pyfunc_call wrapper; returns what pytest would see raised."""
    from grader.judge import plugin

    hook = plugin.pytest_pyfunc_call(None)
    next(hook)
    try:
        test()
    except BaseException as exc:  # noqa: BLE001 - handed to the wrapper, as pluggy does
        try:
            hook.throw(exc)
        except BaseException as seen:  # noqa: BLE001
            return seen
    raise AssertionError("the test passed")


@pytest.mark.parametrize("base", ["NotImplementedError", "ValueError"])
def test_a_property_test_ends_at_the_first_example_that_reaches_a_stub(base):
    """A student's NotImplementedError (a TODO not written yet) ends a Hypothesis test at its first example; any
    other error of the student code still gets Hypothesis's run (the failing example again, and its report)."""
    from types import SimpleNamespace

    from hypothesis import Phase, given, settings
    from hypothesis import strategies as st

    from grader.judge import suite
    from grader.worker.client import student_error

    calls = []

    @settings(derandomize=True, database=None, max_examples=10, phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(st.integers())
    def test_property(x):
        calls.append(x)
        raise student_error({"base": base, "type": base, "message": "ex9: the TODO", "frames": []})

    item = SimpleNamespace(obj=test_property)
    suite._stop_at_stubs(item)
    suite._stop_at_stubs(item)  # a second collection of the same function wraps it once
    seen = _run_as_pytest_would(test_property)
    assert isinstance(seen, StudentError) and type(seen).__name__ == base and str(seen) == "ex9: the TODO"
    if base == "NotImplementedError":
        assert len(calls) == 1 and not getattr(seen, "__notes__", None)
    else:
        assert len(calls) == 2 and any("Failing test case" in note for note in seen.__notes__)


def test_the_warm_up_runs_the_tests_of_the_chosen_exercises_only():
    from types import SimpleNamespace

    from grader.judge.serve import warm_items

    items = [SimpleNamespace(nodeid=f"tests/test_{ex}_x.py::test_{i}") for ex in ("ex1", "ex2", "ex3") for i in range(2)]
    infos = {item.nodeid: {"exercise": item.nodeid.split("_")[1]} for item in items}
    assert warm_items(items, infos, None) == items
    assert [item.nodeid for item in warm_items(items, infos, "ex3,ex1")] == [
        "tests/test_ex1_x.py::test_0", "tests/test_ex1_x.py::test_1", "tests/test_ex3_x.py::test_0",
        "tests/test_ex3_x.py::test_1"]
    assert warm_items(items, infos, "ex9") == []


def test_rebuilt_modules_keep_their_dtype_and_a_one_shot_is_walked_once():
    """A float64 or bfloat16 block reaches the student code in its dtype; a OneShot is a generator there."""
    from grader.worker import rebuild

    for dtype in (torch.float64, torch.bfloat16):
        block = TransformerBlock(ModelConfig(d_model=8, n_heads=2)).to(dtype)
        again = rebuild.from_plain(*rebuild.to_plain(block))
        assert {p.dtype for p in again.parameters()} == {dtype}
        assert all(torch.equal(a, b) for a, b in zip(block.state_dict().values(), again.state_dict().values()))
    items = rebuild.from_plain(*rebuild.to_plain(rebuild.OneShot([3, 1, 2])))
    assert list(items) == [3, 1, 2] and list(items) == []


def test_watch_counts_constructions_and_grad_modes_and_observations_are_checked():
    """rebuild.watch sees the blocks built and the grad modes of the forwards; a malformed observation is refused."""
    from grader.worker import rebuild
    from grader.worker.proxies import Observation

    cfg = ModelConfig(d_model=8, n_heads=2)
    original = TransformerBlock.__dict__["__init__"]
    with rebuild.watch() as seen:
        block = TransformerBlock(cfg)
        with torch.no_grad():
            block(torch.randn(1, 3, 8))
    assert seen["built"]["TransformerBlock"] == 1 and seen["grad"] == [False]
    TransformerBlock(cfg)  # after the watch: nothing counted, the classes are as they were
    assert seen["built"]["TransformerBlock"] == 1 and TransformerBlock.__dict__["__init__"] is original
    good = {"value": 1, "args": [], "kwargs": {}, "built": {"TransformerBlock": 1}, "grad": [False]}
    assert Observation.of(good).built == {"TransformerBlock": 1}
    for bad in ({**good, "grad": ["no"]}, {**good, "built": {"x": "1"}}, {"value": 1}, [good]):
        with pytest.raises(WorkerLost):
            Observation.of(bad)
