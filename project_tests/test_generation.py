"""Tests of llm_basics.generation (sampling, streaming text) and llm_basics.training (batches, loss)."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_basics.generation import generate, generate_text, sample_next
from llm_basics.model import ModelConfig, TinyLM
from llm_basics.training import get_batch, train_lm



# --- small stand-ins -----------------------------------------------------------------------------------


class ByteTokenizer:
    """Id i is the single byte i: a multi-byte UTF-8 character is always split over several tokens."""

    vocab_size = 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode_bytes(self, ids):
        return bytes(ids)

    def decode(self, ids):
        return bytes(ids).decode("utf-8", errors="replace")


class ScriptedModel(nn.Module):
    """A 'model' whose greedy choice at step i is script[i]; it records what it was fed."""

    def __init__(self, script, vocab_size=256, context_length=16):
        super().__init__()
        self.cfg = SimpleNamespace(context_length=context_length, vocab_size=vocab_size)
        self.script = list(script)
        self.vocab_size = vocab_size
        self.seen = []  # (length of input, training flag, grad enabled)

    def forward(self, ids):
        B, T = ids.shape
        self.seen.append((T, self.training, torch.is_grad_enabled()))
        step = len(self.seen) - 1
        logits = torch.zeros(B, T, self.vocab_size)
        logits[:, -1, self.script[step]] = 10.0
        return logits


def _hand_logits(probs):
    return torch.tensor([math.log(p) for p in probs])


# --- sample_next ---------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=30))
def test_sample_next_greedy_is_argmax(values):
    logits = torch.tensor(values)
    assert sample_next(logits) == int(torch.argmax(logits))
    assert sample_next(logits, temperature=0.0, top_k=3, top_p=0.5) == int(torch.argmax(logits))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_sample_next_top_k_never_picks_outside_the_k_largest(k):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, generator=g)
    allowed = set(torch.topk(logits, k).indices.tolist())
    picks = {sample_next(logits, temperature=5.0, top_k=k, generator=g) for _ in range(300)}
    assert picks <= allowed
    assert len(picks) == k  # with a hot temperature every allowed id shows up


def test_sample_next_top_k_larger_than_vocab_keeps_all():
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(torch.zeros(4), temperature=1.0, top_k=10, generator=g) for _ in range(200)}
    assert picks == {0, 1, 2, 3}


@pytest.mark.parametrize(
    "p, expected",
    [(0.3, {0}), (0.55, {0, 1}), (0.7, {0, 1}), (0.8, {0, 1, 2}), (0.95, {0, 1, 2, 3}), (1.0, {0, 1, 2, 3})],
)
def test_sample_next_top_p_on_hand_example(p, expected):
    # probabilities 0.5, 0.25, 0.15, 0.1 (given shuffled): the nucleus grows in that order
    probs = [0.15, 0.5, 0.1, 0.25]
    order = [1, 3, 0, 2]  # ids from most to least likely
    logits = _hand_logits(probs)
    g = torch.Generator().manual_seed(0)
    picks = {sample_next(logits, temperature=1.0, top_p=p, generator=g) for _ in range(400)}
    assert picks == {order[i] for i in expected}


def test_sample_next_top_p_keeps_at_least_one_token():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.0, 0.0, 0.0, 5.0])
    assert {sample_next(logits, temperature=1.0, top_p=1e-9, generator=g) for _ in range(50)} == {3}


def test_sample_next_top_k_then_top_p():
    g = torch.Generator().manual_seed(0)
    logits = _hand_logits([0.4, 0.3, 0.2, 0.1])
    # after top-2 the renormalised probabilities are 4/7, 3/7; top-p 0.5 keeps only the first
    assert {sample_next(logits, temperature=1.0, top_k=2, top_p=0.5, generator=g) for _ in range(100)} == {0}


def test_sample_next_seeded_generator_is_reproducible():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(1))

    def draws(seed):
        g = torch.Generator().manual_seed(seed)
        return [sample_next(logits, temperature=1.3, top_k=20, top_p=0.9, generator=g) for _ in range(30)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_sample_next_low_temperature_is_nearly_greedy():
    logits = torch.tensor([1.0, 2.0, 1.5])
    g = torch.Generator().manual_seed(0)
    assert {sample_next(logits, temperature=1e-3, generator=g) for _ in range(50)} == {1}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(temperature=float("nan")), "temperature"),
        (dict(temperature=1.0, top_k=0), "top_k"),
        (dict(temperature=1.0, top_p=0.0), "top_p"),
        (dict(temperature=1.0, top_p=1.5), "top_p"),
    ],
)
def test_sample_next_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_next(torch.zeros(5), **kwargs)


def test_sample_next_rejects_batched_logits():
    with pytest.raises(ValueError, match=r"\(V,\)"):
        sample_next(torch.zeros(2, 5))


# --- generate ------------------------------------------------------------------------------------------


def test_generate_stops_at_eos_without_emitting_it():
    eos = 0
    model = ScriptedModel([ord("h"), ord("i"), eos, ord("x"), ord("y")])
    deltas = list(generate(model, ByteTokenizer(), "a", max_new_tokens=10, eos_id=eos))
    assert "".join(deltas) == "hi"
    assert len(model.seen) == 3


def test_generate_stops_at_max_new_tokens():
    model = ScriptedModel([ord(c) for c in "abcdefgh"])
    assert generate_text(model, ByteTokenizer(), "z", max_new_tokens=3) == "abc"
    assert len(model.seen) == 3
    assert generate_text(ScriptedModel([65]), ByteTokenizer(), "z", max_new_tokens=0) == ""


def test_generate_yields_split_multibyte_character_intact():
    # "é" is b"\xc3\xa9" and "€" is b"\xe2\x82\xac": each arrives one byte (one token) at a time
    script = list("aé€b".encode("utf-8"))
    model = ScriptedModel(script)
    deltas = list(generate(model, ByteTokenizer(), "x", max_new_tokens=len(script)))
    assert deltas == ["a", "é", "€", "b"]
    assert "\ufffd" not in "".join(deltas)


def test_generate_unfinished_character_at_the_end_becomes_replacement_char():
    script = list("ok".encode()) + [0xE2, 0x82]  # the first two bytes of a 3-byte character
    deltas = list(generate(ScriptedModel(script), ByteTokenizer(), "x", max_new_tokens=4))
    assert "".join(deltas) == "ok\ufffd"


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.binary(min_size=1, max_size=24))
def test_generate_deltas_concatenate_to_decoded_text(data):
    model = ScriptedModel(list(data))
    tok = ByteTokenizer()
    deltas = list(generate(model, tok, "p", max_new_tokens=len(data)))
    assert all(deltas)  # no empty deltas
    assert "".join(deltas) == tok.decode(list(data))


def test_generate_crops_context_and_runs_in_eval_mode_without_grad():
    model = ScriptedModel([ord("a")] * 12, context_length=4)
    model.train()
    text = generate_text(model, ByteTokenizer(), "xy", max_new_tokens=12)
    assert text == "a" * 12
    lengths = [t for t, _, _ in model.seen]
    assert lengths == [2, 3, 4] + [4] * 9
    assert not any(training for _, training, _ in model.seen)
    assert not any(grad for _, _, grad in model.seen)
    assert model.training  # the previous mode is restored
    assert torch.is_grad_enabled()


def test_generate_rejects_empty_prompt_and_bad_arguments():
    with pytest.raises(ValueError, match="prompt"):
        list(generate(ScriptedModel([65]), ByteTokenizer(), ""))
    with pytest.raises(ValueError, match="temperature"):
        list(generate(ScriptedModel([65]), ByteTokenizer(), "a", temperature=-1.0))


def _tiny_lm(seed=0):
    torch.manual_seed(seed)
    return TinyLM(ModelConfig(vocab_size=256, context_length=8, d_model=16, n_heads=2, n_layers=1))


def test_generate_with_tinylm_greedy_and_seeded_sampling_are_reproducible():
    model, tok = _tiny_lm(), ByteTokenizer()
    greedy = generate_text(model, tok, "hello", max_new_tokens=20)
    assert greedy == generate_text(model, tok, "hello", max_new_tokens=20)

    def sampled(seed):
        g = torch.Generator().manual_seed(seed)
        return generate_text(model, tok, "hello", max_new_tokens=20, temperature=1.0, top_k=50, generator=g)

    assert sampled(3) == sampled(3)
    assert sampled(3) != sampled(4)


# --- training ------------------------------------------------------------------------------------------


def test_get_batch_targets_are_inputs_shifted_by_one():
    ids = torch.arange(100)
    x, y = get_batch(ids, 4, 10, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)  # ids are consecutive numbers, so the next id is id + 1
    assert x.dtype == torch.long


def test_get_batch_short_stream_uses_the_whole_stream():
    x, y = get_batch([5, 6, 7], 2, 10, generator=torch.Generator().manual_seed(0))
    assert x.tolist() == [[5, 6], [5, 6]] and y.tolist() == [[6, 7], [6, 7]]
    with pytest.raises(ValueError, match="at least 2"):
        get_batch([1], 2, 4)


@pytest.mark.slow
def test_train_lm_loss_decreases_on_repeated_sequence():
    model = _tiny_lm()
    ids = list(b"the cat sat. " * 30)
    losses = train_lm(model, ids, steps=60, batch_size=8, lr=1e-2, seed=0)
    assert len(losses) == 60 and all(math.isfinite(v) for v in losses)
    assert losses[0] > math.log(256) - 0.5  # starts near uniform over 256 ids
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]


def test_train_lm_same_seed_same_losses():
    ids = torch.tensor(list(b"abcabcabd" * 10))
    a = train_lm(_tiny_lm(1), ids, steps=5, batch_size=4, lr=1e-3, seed=3)
    b = train_lm(_tiny_lm(1), ids, steps=5, batch_size=4, lr=1e-3, seed=3)
    assert a == b


def test_train_lm_calls_on_step_with_each_loss():
    seen = []
    losses = train_lm(_tiny_lm(), list(b"abab" * 20), steps=4, batch_size=2, lr=1e-3, seed=0,
                      on_step=lambda step, loss: seen.append((step, loss)))
    assert seen == list(enumerate(losses, start=1))
