"""The installed version of corpusalign (a leaf module: anything may import it, it imports nothing of the package)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("corpusalign")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
