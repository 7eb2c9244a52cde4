"""corpusalign: build verified, concept-aligned multilingual corpora for LLM training.

Data flow of a build::

    read -> translate -> normalise -> language-ID -> dedup -> verify -> select -> shards -> report

The Python API (docs/api.md), for notebooks and scripts::

    import corpusalign

    corpus = corpusalign.build(src="en", tgt="de,ja", inputs=["data/"], output="corpus")
    corpus.validate()
    kept = corpus.to_polars()                  # the kept rows, one per (concept_id, lang)
    scores = corpusalign.score_pairs(["Good morning."], ["Guten Morgen."], src="en", tgt="de")

Nothing heavy is imported here: the API's names are loaded on first use (``corpusalign --help`` and
``import corpusalign`` stay fast, and import neither polars nor torch).
"""

from __future__ import annotations

from typing import Any

from corpusalign._version import __version__

#: The API's names, defined in corpusalign.api (imported on first access). The trainer itself is the
#: package corpusalign.training; ``corpusalign.train`` is the API's function over it.
_API = ("build", "score_pairs", "train", "evaluate", "Corpus", "ValidationResult", "CorpusValidationError")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'corpusalign' has no attribute {name!r}")
    from corpusalign import api

    value = getattr(api, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
