"""corpusalign: build verified, concept-aligned multilingual corpora for LLM training.

Data flow of a build::

    read -> translate -> normalise -> language-ID -> dedup -> select -> shards -> report

Nothing heavy is imported here; ``corpusalign --help`` stays fast.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("corpusalign")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
