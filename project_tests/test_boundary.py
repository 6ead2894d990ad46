"""The trust boundary at its edges (issue 21, items 1, 2, 4, 6): what the worker can do to the judge by hand.

Student code here attacks the judge from inside the worker, with the grader's source in hand: it forges,
reorders, inflates and trickles messages on the worker's own socket, floods the judge with call backs, leaves
links and FIFOs under the names a test uses, and keeps what a hidden test handed it for a later test. Each
attack has a positive control (the hostile step ran: the forged value arrived, the link points outside, the
kept value is there when the guard is off) and a mark that it was refused. One worker client serves the module.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import textwrap
from pathlib import Path

import pytest

from grader.judge import session as runner, student as door, suite
from grader import untrusted_paths
from grader.worker import wire
from grader.worker.client import StudentError, WorkerClient, WorkerLimits, WorkerLost, WorkerTimeout, student_error
from grader.judge.student import worker_read_paths

STUDENT = '''
import gc
import json
import os
import struct
import time

KEPT = []


def _worker():
    """The worker serving us (the grader's source says where it keeps its socket and the request it serves)."""
    for obj in gc.get_objects():
        if type(obj).__name__ == "Worker" and hasattr(obj, "serving"):
            return obj


def _raw(header, body=None):
    head = json.dumps(header).encode() if body is None else body
    _worker().sock.sendall(struct.pack("<II", len(head), 0) + head)


def echo(x):
    return x


def forge_reply(value, shift=0):
    w = _worker()
    _raw({"r": "ok", "id": w.serving[-1] + shift, "value": value})
    return "real"


def claim_huge_header():
    _worker().sock.sendall(struct.pack("<II", 48 * 2**20, 0))  # and never the 48 MB
    time.sleep(30)


def trickle():
    head = json.dumps({"r": "ok", "id": _worker().serving[-1], "value": 1}).encode()
    sock = _worker().sock
    sock.sendall(struct.pack("<II", len(head), 0))
    for byte in head:
        sock.sendall(bytes([byte]))
        time.sleep(0.4)


def flood(callback):
    n = 0
    while True:
        callback()
        n += 1


def call(callback):
    try:
        return callback()
    except Exception as exc:
        return "the student code saw " + type(exc).__name__


def bad_utf8():
    return b"\\xff".decode("utf-8")


def keep(value):
    KEPT.append(value)


def kept():
    return list(KEPT)


def link(name, target):
    os.symlink(target, name)
    return os.readlink(name)


def fifo(name):
    os.mkfifo(name)
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("boundary")
    target = root / "submission"
    target.mkdir()
    (target / "ex9_edge.py").write_text(textwrap.dedent(STUDENT))
    # no tmpfs over the worker's folder (disk_bytes=0), as where a mount namespace is missing: the judge then
    # sees what the worker leaves there, the case these tests attack (with the tmpfs it sees nothing at all)
    c = WorkerClient(target, root / "work", limits=WorkerLimits(cpu_seconds=1.0, wall_seconds=20.0, disk_bytes=0),
                     read_paths=worker_read_paths(target))
    yield c
    c.close()


@pytest.fixture
def ex(client):
    client.begin_test()
    return client.module("ex9_edge")


# -- item 4: forged, reordered, oversized and trickled messages; floods ------------------------------------


def test_a_forged_reply_costs_one_call_and_never_shifts_later_replies(client, ex):
    got = ex.forge_reply(42)
    assert got == 42  # positive control: the forged message reached the judge (as if the code returned 42)
    generation = client.generation
    client.begin_test()
    # the real reply, left over, is refused: waiting before the next request, or (when it came late) as a reply
    # that names another request
    with pytest.raises(WorkerLost, match="answers no request|another request"):
        client.module("ex9_edge").echo(1)
    assert client.generation == generation  # that worker was stopped: the mark that the refusal happened
    client.begin_test()
    assert [client.module("ex9_edge").echo(n) for n in (5, 6)] == [5, 6]  # nothing shifted


def test_a_reply_to_another_request_is_refused(client, ex):
    with pytest.raises(WorkerLost, match="another request"):
        ex.forge_reply(42, shift=1)
    client.begin_test()
    assert client.module("ex9_edge").echo(3) == 3


def test_a_huge_header_is_refused_before_it_is_read(client, ex):
    with pytest.raises(WorkerLost, match="too large"):
        ex.claim_huge_header()


def test_a_header_with_too_many_items_is_never_decoded():
    payload = b"[" + b"0," * wire.MAX_ITEMS + b"0]"  # 4 MB: under MAX_HEADER, over MAX_ITEMS
    assert len(json.loads(payload)) > wire.MAX_ITEMS  # positive control: decoded, it is that many objects
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(struct.pack("<II", len(payload), 0))
        # the judge reads the header bytes in full, then measures: no json.loads of it ever runs
        import threading

        threading.Thread(target=theirs.sendall, args=(payload,), daemon=True).start()
        with pytest.raises(wire.WireError, match="too large to decode"):
            wire.recv(ours)
    finally:
        ours.close()
        theirs.close()


def test_set_items_and_dict_keys_built_to_share_one_hash_are_refused():
    """Every multiple of 2**61 - 1 hashes alike, so Python builds a set of them in quadratic time: 20,000 took the
    judge seconds of CPU that no limit counted (the positive control below builds 4,000 of them the slow way). The
    decoder refuses such a value at its ninth shared hash; honest sets (-1 and -2 share a hash) still decode."""
    import time

    m = 2**61 - 1
    crafted = list(range(0, 4_000 * m, m))
    start = time.process_time()
    set(crafted)
    slow = time.process_time() - start
    distinct = list(range(4_000))
    start = time.process_time()
    set(distinct)
    assert slow > 20 * (time.process_time() - start + 1e-6), "positive control: the crafted set is not slow"
    for value in (["S", *crafted], ["F", *crafted], ["D", *[x for k in crafted for x in (k, 0)]]):
        start = time.process_time()
        with pytest.raises(wire.WireError, match="share their hashes"):
            wire.Decoder([]).decode(value)
        assert time.process_time() - start < slow / 4
    assert wire.Decoder([]).decode(["S", -1, -2, 0, 1]) == {-1, -2, 0, 1}


def test_a_buffer_named_twice_is_refused():
    """Each buffer is decoded once: one 64 MiB buffer named 16 times took a judge to 9.4 GiB (portable path)."""
    data = bytearray(b"abc")
    assert wire.Decoder([data]).decode(["L", ["B", 0]]) == [b"abc"]
    with pytest.raises(wire.WireError, match="referenced twice"):
        wire.Decoder([data]).decode(["L", ["B", 0], ["B", 0]])


def test_a_header_nested_too_deep_is_measured_not_parsed():
    deep = b"[" * 40_000 + b"]" * 40_000  # over SMALL_HEADER, so measured
    assert wire.measure(deep) == (1, 40_000)
    assert wire.measure(b'{"s": "[[[[,,,,", "v": ["L", 1, 2]}') == (4, 2)  # brackets in strings do not count


def test_a_reply_trickled_a_byte_at_a_time_is_stopped_at_the_backstop(client, ex):
    client.limits.wall_seconds = 1.0
    try:
        with pytest.raises(WorkerTimeout, match="whole reply") as info:
            ex.trickle()
    finally:
        client.limits.wall_seconds = 20.0
    assert info.value.backstop


@pytest.mark.slow
def test_a_flood_of_call_backs_is_stopped_at_the_cpu_limit(client, ex):
    calls = []
    client.limits.cpu_seconds = 0.3
    try:
        with pytest.raises(WorkerTimeout, match="CPU"):
            ex.flood(lambda: calls.append(1))
    finally:
        client.limits.cpu_seconds = 1.0
    assert len(calls) > 100  # the flood ran (each call back a message the judge answered)


def test_every_operation_is_in_the_table_and_checked():
    assert {op.name for op in wire.OPS.values()} >= {"import", "call", "put", "get", "ok", "err", "cb", "hello"}
    assert wire.check({"r": "ok", "id": 3, "value": 1}, "worker").name == "ok"
    for bad in ({"r": "ok", "value": 1}, {"r": "ok", "id": "3", "value": 1}, {"r": "nope", "id": 1},
                {"r": "cb", "id": 1, "cb": 0, "args": [], "kwargs": [], "grad": 1}, ["r", "ok"]):
        with pytest.raises(wire.WireError):
            wire.check(bad, "worker")


# -- item 6: exceptions keep their ancestry; a BaseException in a call back ---------------------------------


def test_a_students_unicode_decode_error_is_a_value_error(ex):
    with pytest.raises(TypeError):
        UnicodeDecodeError("needs five arguments")  # why it used to cross as a plain StudentError
    with pytest.raises(ValueError) as info:
        ex.bad_utf8()
    assert isinstance(info.value, UnicodeDecodeError) and isinstance(info.value, StudentError)
    assert "can't decode" in str(info.value)


def test_a_forged_base_class_gives_no_stranger_class():
    for base in ("BaseException", "KeyboardInterrupt", "ExceptionGroup", "NotAClass", 7):
        exc = student_error({"base": base, "message": "m"})
        assert isinstance(exc, StudentError) and isinstance(exc, Exception)


def test_a_students_exception_is_named_as_the_student_raised_it():
    """A test that names the class it caught (``type(exc).__name__``) names the student's class, and a failure
    raised while handling it says where the student code raised it."""
    from grader.judge.verdicts import reason_from_excinfo

    frames = [["ex2_topk_attention.py", 42, "topk_attention", "raise TypeError('no')"]]
    caught = student_error({"base": "TypeError", "type": "TypeError", "message": "no", "frames": frames})
    own = student_error({"base": "ValueError", "type": "BadTopK", "message": "k", "frames": []})
    odd = student_error({"base": "ValueError", "type": "not a name", "message": "k", "frames": []})
    plain = student_error({"base": "Exception", "type": "Oops", "message": "k", "frames": []})
    assert [type(e).__name__ for e in (caught, own, odd, plain)] == ["TypeError", "BadTopK", "ValueError", "Oops"]
    assert isinstance(caught, TypeError) and isinstance(own, ValueError) and isinstance(plain, StudentError)
    try:
        try:
            raise caught
        except Exception as exc:  # what a test does with a wrong kind of error
            pytest.fail(f"expected ValueError, got {type(exc).__name__}: {exc}")
    except pytest.fail.Exception:
        info = pytest.ExceptionInfo.from_current()
    kind, reason = reason_from_excinfo(info, None)
    assert (kind, reason) == ("failed", "expected ValueError, got TypeError: no (ex2_topk_attention.py line 42)")


def test_pytest_fail_in_a_call_back_is_answered_and_fails_the_test(client, ex):
    generation = client.generation

    def fails():
        pytest.fail("the test's own check")

    with pytest.raises(pytest.fail.Exception, match="own check"):
        ex.call(fails)
    assert ex.echo(8) == 8 and client.generation == generation  # the same worker answers: it was not left waiting


# -- item 1: files cross as bytes; links and FIFOs are never followed ---------------------------------------


def test_a_link_under_a_tests_file_name_is_never_followed(client, ex, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("the grader's own file")
    assert ex.link("tok.json", str(outside)) == str(outside)  # positive control: the link is there
    path = client.private / "tok.json"
    assert path.is_symlink() and path.resolve() == outside  # a judge opening that path would land outside
    with pytest.raises(StudentError) as info:
        client.get_file("tok.json")  # read by the worker, without following: refused
    assert isinstance(info.value, OSError)
    ex.link("given.json", str(outside))
    written = client.put_file("given.json", b"{}")
    assert outside.read_text() == "the grader's own file"  # nothing written through the link
    assert not written.is_symlink() and client.get_file("given.json") == b"{}"


def test_a_fifo_under_a_tests_file_name_never_blocks_the_judge(client, ex):
    ex.fifo("pipe.json")
    assert (client.private / "pipe.json").is_fifo()  # positive control: a plain open() here would block
    with pytest.raises(StudentError, match="not a regular file"):
        client.get_file("pipe.json")


def test_a_next_workers_folder_made_in_advance_is_replaced(client, tmp_path):
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    client.kill()
    ahead = client.workdir / f"worker-{client.generation + 1}"
    ahead.symlink_to(decoy, target_is_directory=True)
    assert ahead.is_dir()  # positive control: mkdir(exist_ok=True) would have taken it as the folder
    client.begin_test()
    assert client.module("ex9_edge").echo(2) == 2
    assert not ahead.is_symlink() and ahead.is_dir() and not any(decoy.iterdir())


def test_a_file_name_is_one_plain_component(client):
    for bad in ("../x", "a/b", "", "..", "x\0"):
        with pytest.raises(ValueError):
            client.put_file(bad, b"")


# -- item 2: no worker that served a hidden test serves a visible one ---------------------------------------


def test_what_a_hidden_test_hands_over_never_reaches_a_visible_test(client, ex):
    door._keep_hidden_inputs_in(client, True)
    ex.keep("canary-hidden-input")
    door._keep_hidden_inputs_in(client, True)  # positive control: the next hidden test sees what was kept
    client.begin_test()
    assert client.module("ex9_edge").kept() == ["canary-hidden-input"]
    door._keep_hidden_inputs_in(client, False)  # a visible test: a fresh worker
    client.begin_test()
    assert client.module("ex9_edge").kept() == []
    assert not client.ran_hidden


def test_visible_tests_run_before_hidden_ones():
    class Item:
        def __init__(self, path, gate=False):
            self.path = Path(path)
            self.stash = pytest.Stash()
            if gate:
                self.stash[suite.IS_GATE] = True

    items = [Item("tests/test_ex1.py"), Item("tests/hidden/test_ex1_hidden.py"), Item("tests/test_ex2.py"),
             Item("tests/test_ex3.py", gate=True)]
    assert [str(i.path) for i in suite.visible_first(items)] == [
        "tests/test_ex3.py", "tests/test_ex1.py", "tests/test_ex2.py", "tests/hidden/test_ex1_hidden.py"]


# -- item 1, the trusted side: files beside the workers' folders (events, judge.log, batch sandboxes) ----------
# Without Landlock (GRADER_WITHOUT=landlock,namespaces) a worker can create or replace any name there; the judge
# and the parent open those names through grader.untrusted_paths only. The hostile step is done here by hand,
# as such a worker would, with a positive control that it would have worked on a plain open().


def _plant_link(tmp_path: Path, name: str) -> tuple[Path, Path]:
    outside = tmp_path / "host-file"
    outside.write_bytes(b'{"event": "forged"}\n')
    link = tmp_path / name
    link.symlink_to(outside)
    assert link.read_bytes() == outside.read_bytes()  # positive control: a plain open() lands outside
    return link, outside


def test_the_events_file_is_never_read_or_written_through_a_link(tmp_path):
    link, outside = _plant_link(tmp_path, "events.jsonl")
    with pytest.raises(untrusted_paths.NotRegularFile):
        runner.read_events(link, 0, [])
    with pytest.raises(untrusted_paths.NotRegularFile):  # as the judge opens it (grader.judge.serve)
        untrusted_paths.open_regular(link, os.O_WRONLY | os.O_APPEND)
    assert outside.read_bytes() == b'{"event": "forged"}\n'


def test_a_fifo_under_the_events_name_never_blocks_the_parent(tmp_path):
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # positive control: it is a FIFO (a blocking open would wait)
    try:
        assert not os.path.isfile(fifo) and os.fstat(fd).st_size == 0
    finally:
        os.close(fd)
    with pytest.raises(untrusted_paths.NotRegularFile, match="not a regular file"):
        runner.read_events(fifo, 0, [])
    assert runner._tail(fifo) == ""  # judge.log's reader too: nothing, at once


def test_submit_makes_the_events_file_anew_and_the_parent_reads_what_it_made(tmp_path):
    link, outside = _plant_link(tmp_path, "events.jsonl")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = type("Server", (), {"limits": runner.Limits(), "next_id": 0, "sock": ours, "_lines": None})()
    try:
        # the step of submit that makes the events file and sends the request (submit then opens the file)
        runner.JudgeServer._send(server, tmp_path / "sub", ["ex1"], events=link, workdir=tmp_path / "work",
                                 limits=runner.Limits(), cpu=None)
        assert json.loads(theirs.recv(65536))["events"] == str(link)
    finally:
        ours.close()
        theirs.close()
    assert not link.is_symlink() and link.stat().st_size == 0  # a new, empty file where the link was
    assert outside.read_bytes() == b'{"event": "forged"}\n'  # nothing written through the link
    fd = runner.open_events(link)
    try:
        with open(link, "ab") as judge:  # the judge writes its events to the file it opened
            judge.write(b'{"event": "collected", "tests": []}\n')
        # the worker then puts a forged file under the name: the parent still reads the one it made
        link.unlink()
        link.write_bytes(b'{"event": "collected", "tests": ["forged"]}\n')
        forged: list[dict] = []
        runner.read_events(link, 0, forged)
        assert forged == [{"event": "collected", "tests": ["forged"]}]  # positive control: the name now lies
        got: list[dict] = []
        runner.read_events(fd, 0, got)
        assert got == [{"event": "collected", "tests": []}]
    finally:
        os.close(fd)


def test_a_submission_file_is_written_new_in_a_batch_sandbox(tmp_path):
    link, outside = _plant_link(tmp_path, "ex4_scaling.py")  # another submission's worker put it there
    untrusted_paths.write_new(link, b"print('mine')\n")
    assert not link.is_symlink() and link.read_bytes() == b"print('mine')\n"
    assert outside.read_bytes() == b'{"event": "forged"}\n'
