"""The translation-memory translator (``tm``): imports existing human translations.

Parallel input already carries its translations; the reader marks them ``origin=human``,
``translator=tm``. This translator fills the rest from translation memories: TMX, TSV/CSV (one
column per language code) or JSONL (one key per language code). Lookup is by the normalised source
segment, so differences in whitespace or Unicode composition do not miss a match. When a memory holds
several translations of one segment, the first one read wins. Nothing is invented: a segment no
memory covers returns ``None``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from corpusalign.config import BuildConfig
from corpusalign.langtags import tag_value
from corpusalign.read.formats import read_all
from corpusalign.steps.normalise import normalise_expr
from corpusalign.translate.base import Translator

log = logging.getLogger(__name__)


class MemoryTranslator(Translator):
    name = "tm"
    origin = "human"

    def __init__(self, paths: Sequence[str], cfg: BuildConfig) -> None:
        self.paths = tuple(paths)
        self.cfg = cfg
        # without memory files there is nothing to load: the step is a plain one (on Ray, fused into the
        # tasks beside it instead of an actor that holds a CPU while it waits)
        self.holds_model = bool(self.paths)
        self.model = ",".join(Path(p).name for p in self.paths) or None
        self._memory: pl.DataFrame | None = None
        self.unreadable = 0

    def setup(self) -> None:
        if self._memory is not None:
            return
        src_col, tgt_col, lang_col = [], [], []
        for item in read_all(self.paths, id_field=None):
            if item.record is None:
                self.unreadable += 1
                continue
            source = tag_value(item.record, self.cfg.src)
            if not isinstance(source, str):
                self.unreadable += 1
                continue
            for lang in self.cfg.tgt:
                target = tag_value(item.record, lang)
                if isinstance(target, str) and target.strip():
                    src_col.append(source)
                    lang_col.append(lang)
                    tgt_col.append(target)
        memory = pl.DataFrame(
            {"src": src_col, "lang": lang_col, "tgt": tgt_col}, schema=dict.fromkeys(("src", "lang", "tgt"), pl.String)
        )
        memory = memory.with_columns(normalise_expr(pl.col("src"), self.cfg.normalise).alias("key"))
        self._memory = memory.unique(subset=["key", "lang"], keep="first", maintain_order=True).select("key", "lang", "tgt")
        if self.paths:
            log.info(
                "translation memory: %d segments from %d file(s), %d unreadable entries",
                self._memory.height,
                len(self.paths),
                self.unreadable,
            )

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str | None]:
        self.setup()
        assert self._memory is not None
        if not texts or self._memory.height == 0:
            return [None] * len(texts)
        query = pl.DataFrame({"text": list(texts)}, schema={"text": pl.String}).with_columns(
            normalise_expr(pl.col("text"), self.cfg.normalise).alias("key"), pl.lit(tgt).alias("lang")
        )
        found = query.join(self._memory, on=["key", "lang"], how="left", maintain_order="left")
        return found["tgt"].to_list()
