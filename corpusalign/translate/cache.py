"""A persistent, content-addressed translation cache (SQLite), shared across builds.

The key of a translation is the sha256 of (source text, source language, target language,
translator, model, parameters), so a change of model or decoding parameters never returns a stale
translation, and an interrupted or repeated build never pays for the same translation twice. Only
successful translations are stored; failures are retried on the next build.

The file lives at ``translate.cache_path``, else ``translations.sqlite`` under the corpusalign cache
root (:func:`corpusalign.cache.cache_root`: ``$CORPUSALIGN_CACHE_DIR``, else ``~/.cache/corpusalign``).
SQLite in WAL mode lets several builds share it. ``corpusalign build --no-cache`` bypasses it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corpusalign.cache import cache_root
from corpusalign.translate.base import Failed, Result, Translator

CACHE_FILE = "translations.sqlite"


def default_cache_path() -> Path:
    """``translations.sqlite`` under :func:`corpusalign.cache.cache_root`."""
    return cache_root() / CACHE_FILE


def cache_key(text: str, src: str, tgt: str, translator: str, model: str | None, params: str | None) -> str:
    blob = json.dumps([text, src, tgt, translator, model, params], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class TranslationCache:
    """``get_many`` and ``put_many`` over one SQLite table; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._connect()

    def __getstate__(self) -> dict[str, Any]:  # a cache sent to another process (a Ray worker) reopens the file there
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._connect()

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS translations (key TEXT PRIMARY KEY, translation TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.commit()

    @classmethod
    def open(cls, path: str | Path | None = None) -> TranslationCache:
        return cls(Path(path) if path else default_cache_path())

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                marks = ",".join("?" * len(chunk))
                for k, v in self._db.execute(f"SELECT key, translation FROM translations WHERE key IN ({marks})", chunk):
                    found[k] = v
        return found

    def put_many(self, items: dict[str, str]) -> None:
        if not items:
            return
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO translations (key, translation, created) VALUES (?, ?, ?)",
                [(k, v, now) for k, v in items.items()],
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM translations").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedTranslator(Translator):
    """``inner`` behind a :class:`TranslationCache`: only texts the cache lacks reach the model."""

    def __init__(self, inner: Translator, cache: TranslationCache) -> None:
        self.inner = inner
        self.cache = cache
        self.name, self.origin, self.model = inner.name, inner.origin, inner.model
        self.hits = 0
        self.misses = 0

    @property
    def params(self) -> dict[str, Any]:
        return self.inner.params

    def check(self) -> None:
        self.inner.check()

    def setup(self) -> None:
        """Only the availability check: the model is loaded when a text first misses the cache."""
        self.inner.check()

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[Result]:
        params = self.inner.params_json()
        keys = [cache_key(t, src, tgt, self.inner.name, self.inner.model, params) for t in texts]
        found = self.cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        out: list[Result] = [found.get(k) for k in keys]
        if todo:
            fresh = self.inner.translate([texts[i] for i in todo], src, tgt)
            for i, r in zip(todo, fresh, strict=True):
                out[i] = r
            self.cache.put_many({keys[i]: r for i, r in zip(todo, fresh, strict=True) if isinstance(r, str)})
        return out

    def describe(self) -> str:
        return f"{self.inner.describe()}, cache {self.cache.path}"

    def close(self) -> None:
        self.inner.close()
        self.cache.close()


__all__ = ["CachedTranslator", "Failed", "TranslationCache", "cache_key", "default_cache_path"]
