"""Where the WordLlama wheel keeps its model, found without ``WordLlama.load``.

- Replaces ``WordLlama.load`` (``wordllama/wordllama.py``, ``resolve_file``,
  in wordllama 0.4.0.post1) for the one model wirewatch uses, ``l2_supercat``:
  ``load`` looks for the tokenizer under ``wordllama/tokenizer/`` while the
  wheel ships it under ``wordllama/tokenizers/``, so it never finds it and
  tries to download it from the Hugging Face hub.
- Symptom here: with no model hub reachable (a desk's locked-down host, CI),
  loading failed with ``FileNotFoundError`` although every file it needs was
  installed; with the hub reachable, a worker would fetch files at start-up
  from a host it was never told to use.
- :func:`model_files` reads the two files straight from the installed package
  (found without importing it), so nothing is ever downloaded.
- Lets go when ``WordLlama.load(disable_download=True)`` finds the shipped
  tokenizer; ``tests/unit/test_upstream.py`` shows it failing still.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["MODEL", "SHIPPED_DIMENSIONS", "model_files"]

#: The WordLlama model wirewatch reads: its name, and the dimensions of the weights the wheel ships.
MODEL, SHIPPED_DIMENSIONS = "l2_supercat", 256


def model_files() -> tuple[Path, Path]:
    """The (tokenizer, weights) files of :data:`MODEL` inside the installed wordllama package.

    Raises FileNotFoundError, naming what is missing, when the package or a file is not there.
    """
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the wordllama package is not installed: pip install wordllama")
    package = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = package / "tokenizers" / f"{MODEL}_tokenizer_config.json"
    weights = package / "weights" / f"{MODEL}_{SHIPPED_DIMENSIONS}.safetensors"
    for path in (tokenizer, weights):
        if not path.is_file():
            raise FileNotFoundError(f"wordllama's wheel no longer ships {path.relative_to(package)}")
    return tokenizer, weights
