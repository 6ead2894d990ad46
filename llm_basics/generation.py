"""Turning next-token logits into text: greedy decoding, temperature, top-k and top-p (nucleus) sampling.

Example (with a trained ``model`` and ``tokenizer``)::

    >>> for delta in generate(model, tokenizer, "Attention is", max_new_tokens=20):   # doctest: +SKIP
    ...     print(delta, end="", flush=True)
    >>> g = torch.Generator().manual_seed(0)
    >>> generate_text(model, tokenizer, "Attention is", temperature=0.8, top_k=40, generator=g)  # doctest: +SKIP
"""

from __future__ import annotations

import codecs
from typing import Any, Iterator

import torch
from torch import Tensor

__all__ = ["sample_next", "generate", "generate_text"]


def _check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature >= 0:  # also catches NaN
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _keep_top_k(logits: Tensor, k: int) -> Tensor:
    """Set every logit outside the k largest to -inf (exactly k survive, ties broken by torch.topk)."""
    k = min(k, logits.size(-1))
    keep = torch.zeros_like(logits, dtype=torch.bool)  # (V,)
    keep[torch.topk(logits, k).indices] = True
    return logits.masked_fill(~keep, float("-inf"))  # (V,)


def _keep_top_p(logits: Tensor, p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability mass reaches p (at least one token)."""
    probs = torch.softmax(logits, dim=-1)  # (V,)
    sorted_probs, order = torch.sort(probs, descending=True)  # (V,), (V,)
    # mass of the tokens strictly before each one in sorted order; a token is kept while that is still < p
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # (V,)
    keep_sorted = mass_before < p  # (V,), the first token always passes since p > 0
    keep = torch.zeros_like(keep_sorted)
    keep[order] = keep_sorted  # back to vocabulary order
    return logits.masked_fill(~keep, float("-inf"))  # (V,)


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Pick the next token id from the logits ``(V,)`` of one position.

    ``temperature == 0`` is greedy (the argmax; the first one on ties). Otherwise the logits are divided by
    the temperature, cut to the ``top_k`` largest, then to the top-``p`` nucleus, and one id is drawn with
    ``torch.multinomial(..., generator=generator)`` (a seeded generator gives the same draw every time).

    Example::

        >>> logits = torch.tensor([1.0, 3.0, 2.0])
        >>> sample_next(logits)                                    # greedy
        1
        >>> sample_next(logits, temperature=1.0, top_k=1)          # only the best token survives
        1
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_next(logits, temperature=1.0, top_p=0.9, generator=g) in (1, 2)
        True
    """
    _check_sampling_args(temperature, top_k, top_p)
    if logits.dim() != 1:
        raise ValueError(f"logits must have shape (V,), got shape {tuple(logits.shape)}")
    logits = logits.detach().to(torch.float64)  # (V,)

    # 1. greedy: the single most likely token
    if temperature == 0:
        return int(torch.argmax(logits))
    # 2. temperature: < 1 sharpens the distribution, > 1 flattens it
    logits = logits / temperature  # (V,)
    # 3. top-k: only the k largest logits stay in the race
    if top_k is not None:
        logits = _keep_top_k(logits, top_k)  # (V,)
    # 4. top-p: only the most likely tokens whose mass reaches p stay
    if top_p is not None:
        logits = _keep_top_p(logits, top_p)  # (V,)
    # 5. draw one id from what is left
    probs = torch.softmax(logits, dim=-1)  # (V,)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


def _model_device(model: Any) -> torch.device:
    params = getattr(model, "parameters", None)
    if params is not None:
        for p in params():
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def _last_logits(model: Any, context: list[int], device: torch.device) -> Tensor:
    """Logits of the last position for one sequence of ids (gradients off)."""
    x = torch.tensor([context], dtype=torch.long, device=device)  # (1, T)
    return model(x)[0, -1]  # (V,)


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int = 50,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[str]:
    """Continue ``prompt`` one token at a time, yielding the new text as it appears.

    Each step feeds the last ``context_length`` ids to the model, picks the next id with
    :func:`sample_next`, and passes that token's bytes through an incremental UTF-8 decoder. A character
    whose bytes are split over two tokens is therefore yielded whole, once its last byte arrives; a step that
    completes no character yields nothing. Stops after ``max_new_tokens`` tokens or at ``eos_id`` (which is not
    yielded). The model runs in eval mode without gradients; its previous mode is restored at the end.

    Example::

        >>> deltas = list(generate(model, tokenizer, "The cat", max_new_tokens=5))   # doctest: +SKIP
        >>> deltas                                                                   # doctest: +SKIP
        [' sat', ' on', ' the', ' m', 'at']
    """
    _check_sampling_args(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    ids = list(tokenizer.encode(prompt))
    if not ids:
        raise ValueError("the prompt encodes to no token; give a non-empty prompt")
    cfg = getattr(model, "cfg", None)
    context_length = getattr(cfg, "context_length", None)
    device = _model_device(model)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        for _ in range(max_new_tokens):
            # 1. crop to what the model can see
            context = ids if context_length is None else ids[-context_length:]
            # 2. scores for the next token, then pick one
            logits = _last_logits(model, context, device)  # (V,)
            next_id = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            # 3. end of text: stop without emitting it
            if eos_id is not None and next_id == eos_id:
                break
            ids.append(next_id)
            # 4. bytes -> text; an unfinished multi-byte character waits in the decoder
            delta = decoder.decode(tokenizer.decode_bytes([next_id]))
            if delta:
                yield delta
        # 5. bytes still waiting at the end become U+FFFD, like tokenizer.decode would do
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


def generate_text(model: Any, tokenizer: Any, prompt: str, **kwargs: Any) -> str:
    """All of :func:`generate`'s deltas joined into one string (the new text only, without the prompt).

    Example::

        >>> generate_text(model, tokenizer, "The cat", max_new_tokens=5)   # doctest: +SKIP
        ' sat on the mat'
    """
    return "".join(generate(model, tokenizer, prompt, **kwargs))
