"""What a brief means, as a short vector: static word embeddings averaged over its tokens.

Headlines of one story often share only a common word or two ("Kremlin
envoy lands in Washington" / "Putin's man meets Trump aides in US capital"):
term vectors see little in common, word embeddings see two texts about the
same things. The clusterer adds the cosine of such vectors to its term
affinity (see :mod:`wirewatch.core.clustering`).

The embeddings are WordLlama's ``l2_supercat`` (token embeddings distilled
from a large language model, shipped inside the ``wordllama`` wheel, so
nothing is downloaded): a text's vector is the mean of its tokens' rows, cut
to the first ``dimensions`` columns (the model is trained so that a prefix of
its columns is itself an embedding), and scaled to unit length. Tens of
microseconds a headline, no model server, no GPU. Pure Python over numpy and the Rust
``tokenizers``: no Kafka, no Faust.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer

from ..upstream.wordllama import SHIPPED_DIMENSIONS, model_files

__all__ = ["MAX_EMBEDDED_CHARS", "SentenceEncoder", "default_encoder", "unit_length"]

#: Only a text's opening is embedded: a long wire brief's first lines say what it is about.
MAX_EMBEDDED_CHARS = 400
#: Words whose tokens are remembered; past this many the memory starts afresh (about 10 MB at most).
MAX_REMEMBERED_WORDS = 30_000


class SentenceEncoder:
    """Unit-length vectors of texts, from a tokenizer and a token embedding matrix."""

    def __init__(self, tokenizer: Tokenizer, table: np.ndarray) -> None:
        self._tokenizer = tokenizer
        # Kept at the half precision the model ships in (8 MB at 128 dimensions); sums are taken in single.
        self._table = np.ascontiguousarray(table, dtype=np.float16)
        self._tokens_of_word: dict[str, list[int]] = {}

    @classmethod
    def wordllama(cls, dimensions: int = 128) -> SentenceEncoder:
        """The WordLlama model the wheel ships, cut to its first ``dimensions`` columns."""
        if not 0 < dimensions <= SHIPPED_DIMENSIONS:
            raise ValueError(f"dimensions must be between 1 and {SHIPPED_DIMENSIONS}, not {dimensions}")
        tokenizer_file, weights_file = model_files()
        with safe_open(str(weights_file), framework="np") as weights:
            table = weights.get_slice("embedding.weight")[:, :dimensions]
        return cls(Tokenizer.from_file(str(tokenizer_file)), table)

    def encode(self, text: str) -> np.ndarray | None:
        """The unit vector of ``text`` (its first :data:`MAX_EMBEDDED_CHARS`), or None when it has no token.

        Tokenised word by word, each word's tokens remembered: between other
        work a tokenizer call costs four times what it does in a tight loop
        (its tables fall out of the CPU's caches), and news repeats its words.
        """
        known = self._tokens_of_word
        if len(known) > MAX_REMEMBERED_WORDS:
            known.clear()
        ids: list[int] = []
        for word in text[:MAX_EMBEDDED_CHARS].split():
            tokens = known.get(word)
            if tokens is None:
                # A link's tokens say nothing of the story, and each link is new: a tokenizer call wasted.
                tokens = known[word] = [] if word.startswith(("http://", "https://")) else (
                    self._tokenizer.encode(word, add_special_tokens=False).ids)
            ids += tokens
        if not ids:
            return None
        return unit_length(self._table[ids].sum(axis=0, dtype=np.float32))


def unit_length(vector: np.ndarray) -> np.ndarray | None:
    """``vector`` scaled to unit length; None for a zero vector, which points nowhere."""
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0.0 else None


@lru_cache(maxsize=4)
def default_encoder(dimensions: int) -> SentenceEncoder:
    """One shared encoder per size: every engine of a process reads the same matrix."""
    return SentenceEncoder.wordllama(dimensions)
