"""Lesson 1 of a course on LLM basics: the given code that the lesson walks through and the exercises import.

Modules (import the one you need; this package imports nothing heavy by itself):

- ``llm_basics.tokenizer``  -- byte-level BPE tokenizer written from scratch (``BPETokenizer``)
- ``llm_basics.corpus``     -- the lesson's own text, for training in walkthroughs and tests (``lesson_text``)
- ``llm_basics.attention``  -- causal mask, scaled dot-product attention, multi-head attention
- ``llm_basics.model``      -- ``ModelConfig``, norms, feed-forward, pre-norm ``TransformerBlock``, ``TinyLM``
- ``llm_basics.generation`` -- greedy / temperature / top-k / top-p sampling and streaming ``generate``
- ``llm_basics.training``   -- ``get_batch`` and a small AdamW loop ``train_lm``

Example::

    >>> from llm_basics.model import ModelConfig, TinyLM
    >>> TinyLM(ModelConfig(vocab_size=512, context_length=64)).cfg.d_model
    64
"""
