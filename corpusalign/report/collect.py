"""Collect a build's numbers into ``report.json``, from its artefacts only.

Inputs: ``manifest.json``, ``stats.json``, the shards, the ``rejected/`` set and the
``quarantine/`` set of a finished build. Nothing is re-run: every number is counted from rows the
build wrote, or copied from the manifest and the step statistics.

The result is a plain dict (see :data:`REPORT_VERSION` and docs/report.md for every key). Its
``metrics`` are a flat ``name -> number`` mapping meant for CI gates
(``corpusalign report DIR --fail-under kept_ratio=0.8``).

Memory does not grow with the corpus: the shards and the rejected files are read one file at a time,
in record batches of :data:`BATCH_ROWS` rows (texts only to measure their length, then dropped), and
each report section keeps only aggregates that merge across batches: histogram counts, pattern and
language counts, the quantiles' candidate values (an exact two-pass selection, :class:`_KeyCounts`),
a bounded sample of pairs chosen by a hash of the concept id, and the first examples per reason in
hash order. The one aggregate that grows is the duplicate clusters' sizes: 8 bytes per rejected
duplicate (a hash of its ``dup_of``), counted at the end. docs/report.md, "Memory".
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from corpusalign.langtags import lid_label, tag_fallbacks
from corpusalign.store.manifest import (
    NOT_IN_INPUT_REASONS,
    STATS,
    entry_path,
    language_warnings,
    read_manifest,
    rows_not_in_input,
)
from corpusalign.verify.scores import DOMAINS, SENTENCE_MAX_WORDS, SHORT_MAX_WORDS

#: Bumped when a key of report.json changes meaning or disappears (adding keys does not bump it).
REPORT_VERSION = 2  # 2: rejected_rows leaves out rows never in the input (not_in_input_rows)

#: Verification scores shown per language, with fixed histogram edges (values outside are counted
#: in the end bins), so that histograms of two builds line up bin for bin.
SCORE_EDGES: dict[str, list[float]] = {
    "verify_p": [round(i * 0.05, 2) for i in range(21)],
    "cos": [round(0.5 + i * 0.025, 3) for i in range(21)],
    "margin": [round(0.8 + i * 0.03, 2) for i in range(21)],
    "len_log_ratio": [round(-2.0 + i * 0.2, 1) for i in range(21)],
    "lid_expected": [round(i * 0.05, 2) for i in range(21)],
    "copy_sim": [round(i * 0.05, 2) for i in range(21)],
    "script_ok": [round(i * 0.05, 2) for i in range(21)],
    "num_agree": [round(i * 0.05, 2) for i in range(21)],
}

#: What each score means, for the report's captions.
SCORE_HELP: dict[str, str] = {
    "verify_p": "gate probability that the pair is a faithful translation",
    "cos": "cosine of source and target embeddings",
    "margin": "ratio margin among the batch's pairs (> 1: the pair stands out)",
    "len_log_ratio": "log(target length / source length), a Han character counting three",
    "lid_expected": "language-ID probability of the row's own language",
    "copy_sim": "character 3-gram overlap with the source (1.0: untranslated copy)",
    "script_ok": "share of letters in the language's scripts",
    "num_agree": "agreement of numbers between source and target",
}

#: Hard-rule names of the gate whose threshold is drawn on a score's histogram.
_RULE_OF_SCORE = {"margin": "margin_min", "copy_sim": "copy_sim_max", "script_ok": "script_min", "num_agree": "num_min"}

#: Pairs per language in the length plot.
LENGTH_SAMPLE = 1500

#: Examples shown per drop reason.
EXAMPLES_PER_REASON = 3

_DUPLICATE_REASONS = ("duplicate", "near_duplicate")

#: Rows per record batch read from a shard or a rejected file.
BATCH_ROWS = 65_536

#: The kept rows' quantiles of each score (``kept_quantiles``), as ``numpy.quantile`` computes them.
_QUANTILES = (("p05", 0.05), ("median", 0.5), ("p95", 0.95))

#: What each length domain (:data:`~corpusalign.verify.scores.DOMAINS`) covers, for the report's captions.
DOMAIN_HELP: dict[str, str] = {
    "short": f"source of at most {SHORT_MAX_WORDS} words",
    "sentence": f"source of {SHORT_MAX_WORDS + 1} to {SENTENCE_MAX_WORDS} words",
    "paragraph": f"source of more than {SENTENCE_MAX_WORDS} words",
}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 6) if b else 0.0


def _files(root: Path, entries: list[dict[str, Any]]) -> list[str]:
    return [str(entry_path(root, e.get("path"))) for e in entries]  # refuses paths outside the corpus


def _batches(path: str, columns: list[str], fields: list[str]) -> Iterator[pl.DataFrame]:
    """One Parquet file in record batches of at most :data:`BATCH_ROWS` rows, in file order: the named
    ``columns``, plus ``_chars`` (characters of the text ``fields``, measured by Polars' streaming engine
    as it reads them; the texts themselves never come out) when ``fields`` is not empty."""
    selected = [*columns, _chars(fields).alias("_chars")] if fields else columns
    yield from pl.scan_parquet(path).select(selected).collect_batches(chunk_size=BATCH_ROWS, maintain_order=True)


def _concept_chunks(paths: list[str], columns: list[str], fields: list[str]) -> Iterator[pl.DataFrame]:
    """The rows of the shards ``paths`` in frames that never split a concept.

    A shard holds whole concepts, the rows of one concept next to each other (sorted by concept and
    language), so the last concept of a record batch is held back and put in front of the next one.
    """
    for path in paths:
        carry: pl.DataFrame | None = None
        for rows in _batches(path, columns, fields):
            if carry is not None:
                rows = pl.concat([carry, rows], how="vertical_relaxed")
            if not rows.height:
                continue
            ids = rows["concept_id"]
            others = (ids != ids[-1]).arg_true()
            cut = int(others[-1]) + 1 if others.len() else 0  # where the last concept's rows begin
            if cut:
                yield rows.slice(0, cut)
            carry = rows.slice(cut)
        if carry is not None and carry.height:
            yield carry


def _file_frames(paths: list[str], columns: list[str], fields: list[str]) -> Iterator[pl.DataFrame]:
    """Each rejected file as one frame of the narrow ``columns`` (texts as ``_chars`` only), read in record
    batches. A rejected file holds the rejected rows of one input batch of the build (``batch_size``
    records), so all rejected rows of a record are in the same frame and a frame stays that small."""
    for path in paths:
        parts = list(_batches(path, columns, fields))
        if parts:
            yield pl.concat(parts, how="vertical_relaxed")


def _values(column: pl.Series) -> np.ndarray:
    """A score column as float64, nulls and NaN left out."""
    values = np.asarray(column.cast(pl.Float64).to_numpy(), dtype=np.float64)
    return values[~np.isnan(values)]


def _order_keys(values: np.ndarray) -> np.ndarray:
    """float32 values as uint32 keys in the same order (sign bit flipped for positives, all bits for negatives)."""
    bits = values.astype(np.float32).view(np.uint32)
    return np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)


def _key_value(key: int) -> float:
    """The float32 value (as a Python float) of an :func:`_order_keys` key."""
    bits = key & 0x7FFFFFFF if key >> 31 else ~key & 0xFFFFFFFF
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


class _KeyCounts:
    """How often each uint32 key occurred, sparse: its distinct keys, sorted, and their counts.

    Quantiles from it are exact in two passes over the rows: the first counts the keys' top 16 bits
    (at most 65,536 distinct), which tells in which of those buckets each wanted rank falls; the second
    counts the whole keys of those few buckets only (at most 65,536 each). Memory: at most about 0.8 MB
    per bucket set, whatever the number of rows.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint32)
        self.counts = np.empty(0, dtype=np.int64)

    def add(self, keys: np.ndarray) -> None:
        if not keys.size:
            return
        k, c = np.unique(keys, return_counts=True)
        if self.keys.size:
            k, inverse = np.unique(np.concatenate([self.keys, k]), return_inverse=True)
            c = np.bincount(inverse, weights=np.concatenate([self.counts, c]), minlength=k.size)  # exact below 2**53
        self.keys, self.counts = k.astype(np.uint32), c.astype(np.int64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def locate(self, rank: int, bucket: int | None = None) -> tuple[int, int]:
        """``(key, rank among the rows of that key)`` of the value of 0-based ``rank`` in sorted order
        (among the keys whose top 16 bits are ``bucket``, when given)."""
        keys, counts = self.keys, self.counts
        if bucket is not None:
            inside = (keys >> 16) == bucket
            keys, counts = keys[inside], counts[inside]
        cum = np.cumsum(counts)
        i = int(np.searchsorted(cum, rank, side="right"))
        return int(keys[i]), rank - int(cum[i] - counts[i])


def _quantile_ranks(n: int) -> dict[str, tuple[int, int, float]]:
    """Per quantile of :data:`_QUANTILES`: the 0-based ranks of the two values it lies between, and the
    weight of the second, as ``numpy.quantile`` (method ``linear``) takes them for ``n`` values."""
    out = {}
    for name, q in _QUANTILES:
        h = float(np.float64(n - 1) * np.float64(q))
        if h >= n - 1:
            out[name] = (n - 1, n - 1, 1.0)
        else:
            lo = math.floor(h)
            out[name] = (lo, lo + 1, h - lo)
    return out


def _lerp(a: float, b: float, t: float) -> float:
    """``numpy.quantile``'s interpolation between neighbours ``a`` and ``b``, to the last bit."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def _histogram(values: np.ndarray, edges: list[float]) -> np.ndarray:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=np.asarray(edges))
    return counts.astype(np.int64)


def _thresholds(manifest: dict[str, Any], lang: str) -> dict[str, float]:
    """Where the gate of ``lang`` cuts each score (the ``*`` gate when the language has none)."""
    verification = manifest.get("verification") or {}
    gates = verification.get("gates") or {}
    gate = next((gates[t] for t in tag_fallbacks(lang) if t in gates), None) or gates.get("*")  # pt-BR: pt, else *
    if not gate:
        return {}
    from corpusalign.verify.gate import DEFAULT_RULES

    rules = {**DEFAULT_RULES, **(gate.get("rules") or {})}
    out = {"verify_p": float(gate["threshold"])}
    for score, rule in _RULE_OF_SCORE.items():
        out[score] = float(rules[rule])
    return out


def _text(row: dict[str, Any], fields: list[str]) -> str | None:
    parts = [(f, row.get(f)) for f in fields if row.get(f) is not None]
    if not parts:
        return None
    if len(fields) == 1:
        return parts[0][1]
    return "\n".join(f"[{f}] {v}" for f, v in parts)


def collect(root: str | Path) -> dict[str, Any]:
    """All numbers of the build in ``root`` as a report dict (see the module docstring).

    Phases: read the manifest and stats; stream the kept shards (record batches that never split a
    concept, texts reduced to their lengths) through the sections that count kept rows, then the
    rejected files through those that count rejected rows; then each section gives its part of the
    report (one function or class per section, some with a short second look at the files).
    """
    root = Path(root)
    manifest = read_manifest(root)
    stats_path = root / STATS
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {"steps": {}}
    langs: list[str] = manifest["languages"]
    src: str = manifest["source_language"]
    targets = [lang for lang in langs if lang != src]
    fields: list[str] = manifest.get("fields", ["text"])
    # every path is checked before any file is read
    kept_paths, rejected_paths, quarantine_paths = (_files(root, manifest[k]) for k in ("shards", "rejected", "quarantine"))

    completeness, language_id = _Completeness(langs), _LanguageId(langs)
    scores, lengths, examples = _Scores(manifest, src, targets, langs), _Lengths(src, targets, fields), _Examples(src, fields)
    base_cols = ["concept_id", "lang", "lid_lang", *SCORE_EDGES]
    for rows in _concept_chunks(kept_paths, base_cols, fields):
        for section in (completeness, scores, lengths, language_id):
            section.add_kept(rows)
    for rows in _file_frames(rejected_paths, [*base_cols, "drop_reason", "drop_detail"], fields):
        for section in (scores, lengths, examples):
            section.add_rejected(rows)

    headline, per_language, drop_reasons = _headline(manifest)
    report = {
        "report_version": REPORT_VERSION,
        "corpus": str(root.resolve()),
        "corpusalign_version": manifest.get("corpusalign_version"),
        "schema_version": manifest.get("schema_version"),
        "created": manifest.get("created"),
        "build_fingerprint": manifest.get("build_fingerprint"),
        "manifest_digest": manifest.get("digest"),
        "source_language": src,
        "languages": langs,
        "fields": fields,
        "verification": _verification_summary(manifest),
        "headline": headline,
        "per_language": per_language,
        "drop_reasons": drop_reasons,
        "kept_by_domain": _kept_by_domain(stats, targets),
        "completeness": completeness.result(),
        "scores": scores.result(kept_paths),
        "lengths": lengths.result(kept_paths, rejected_paths),
        "language_id": language_id.result(),
        "provenance": {lang: dict(manifest["counts"].get("provenance_per_lang", {}).get(lang, {})) for lang in langs},
        "translators": manifest.get("translators", {}),
        "translation": manifest.get("translation"),
        "duplicates": _duplicate_clusters(rejected_paths, src),
        "timings": _timings(stats),
        "examples": examples.result(kept_paths, rejected_paths, quarantine_paths),
        "warnings": language_warnings(manifest),  # e.g. "fr: 0 of 20 rows kept (top reason missing_target 20)"
    }
    report["metrics"] = metrics(report)
    return report


def _headline(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(headline, per_language, drop_reasons)``: the build's totals, kept and dropped rows per
    language, and each drop reason's rows and rate (quarantined rows as a reason of their own)."""
    acct, counts, langs = manifest["accounting"], manifest["counts"], manifest["languages"]
    absent = rows_not_in_input(manifest)
    input_rows = acct["input_rows"]
    concepts_in = acct["input_records"] - acct["quarantined_rows"]
    per_language: dict[str, Any] = {}
    for lang in langs:
        k = counts["rows_per_lang"].get(lang, 0)
        r = {
            reason: by_lang[lang]
            for reason, by_lang in manifest.get("drop_reasons", {}).items()
            if lang in by_lang and reason not in NOT_IN_INPUT_REASONS
        }
        per_language[lang] = {
            "input_rows": concepts_in,
            "kept_rows": k,
            "rejected_rows": sum(r.values()),
            "not_in_input_rows": absent[lang],
            "kept_ratio": _ratio(k, concepts_in),
            "drop_reasons": dict(sorted(r.items(), key=lambda kv: -kv[1])),
        }
    drop_reasons: dict[str, Any] = {}
    for reason, by_lang in sorted(manifest.get("drop_reasons", {}).items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(by_lang.values())
        drop_reasons[reason] = {"rows": n, "rate": _ratio(n, input_rows), "per_language": dict(by_lang)}
    if acct["quarantined_rows"]:
        drop_reasons["quarantined"] = {
            "rows": acct["quarantined_rows"],
            "rate": _ratio(acct["quarantined_rows"], input_rows),
            "per_language": {},
        }
    headline = {
        "input_records": acct["input_records"],
        "input_rows": input_rows,
        "concepts_in": concepts_in,
        "concepts_kept": counts["concepts"],
        "concepts_complete": counts["complete_concepts"],
        "kept_rows": acct["kept_rows"],
        "rejected_rows": acct["rejected_rows"] - sum(absent.values()),
        "not_in_input_rows": sum(absent.values()),
        "quarantined_rows": acct["quarantined_rows"],
        "kept_ratio": _ratio(acct["kept_rows"], input_rows),
        "concept_kept_ratio": _ratio(counts["concepts"], concepts_in),
        "complete_ratio": _ratio(counts["complete_concepts"], concepts_in),
        "accounting_ok": bool(acct["ok"]),
        "shards": len(manifest["shards"]),
    }
    return headline, per_language, drop_reasons


class _Completeness:
    """Concepts per combination of languages kept, and per language.

    Exact from record batches: a concept never spans shards nor (:func:`_concept_chunks`) batches.
    Memory: one count per combination of languages seen."""

    def __init__(self, langs: list[str]) -> None:
        self.langs = langs
        self.patterns: Counter[str] = Counter()
        self.per_language: Counter[str] = Counter()

    def add_kept(self, kept: pl.DataFrame) -> None:
        patterns = (
            kept.group_by("concept_id")
            .agg(pl.col("lang").unique().sort().alias("langs"))
            .select(pl.col("langs").list.join(",").alias("key"))
            .group_by("key")
            .agg(pl.len().alias("concepts"))
        )
        for key, n in patterns.iter_rows():
            self.patterns[key] += n
        for lang, n in kept.group_by("lang").agg(pl.col("concept_id").n_unique()).iter_rows():
            self.per_language[lang] += n

    def result(self) -> dict[str, Any]:
        completeness: dict[str, Any] = {"languages": self.langs, "patterns": []}
        for key, n in sorted(self.patterns.items(), key=lambda kv: (-kv[1], kv[0])):
            present = key.split(",")
            completeness["patterns"].append({"languages": [lang for lang in self.langs if lang in present], "concepts": int(n)})
        completeness["concepts_per_language"] = {lang: int(self.per_language.get(lang, 0)) for lang in self.langs}
        return completeness


class _Scores:
    """Histograms of each score per target language (``lid_expected``: every language), kept and
    rejected rows apart, with the kept rows' quantiles and the threshold the build applied.

    Bin counts add up across batches. The quantiles are exact (the values ``numpy.quantile`` would
    return on all kept values at once): :class:`_KeyCounts` finds the buckets of the ranks in this pass,
    :meth:`result` reads the kept score columns once more for the values in those buckets."""

    def __init__(self, manifest: dict[str, Any], src: str, targets: list[str], langs: list[str]) -> None:
        self.manifest, self.src = manifest, src
        self.langs_of = {score: set(targets if score != "lid_expected" else langs) for score in SCORE_EDGES}
        self.counts: dict[tuple[str, str, bool], np.ndarray] = {}
        self.finite: set[tuple[str, str]] = set()  # (score, lang) with a finite value, kept or rejected
        self.buckets: dict[tuple[str, str], _KeyCounts] = {}  # kept values' top 16 key bits

    def add_kept(self, rows: pl.DataFrame) -> None:
        self._add(rows, kept=True)

    def add_rejected(self, rows: pl.DataFrame) -> None:
        self._add(rows, kept=False)

    def _add(self, rows: pl.DataFrame, kept: bool) -> None:
        for (lang,), part in rows.partition_by("lang", as_dict=True).items():
            for score, edges in SCORE_EDGES.items():
                if lang not in self.langs_of[score]:
                    continue
                values = _values(part[score])
                if not values.size:
                    continue
                if np.isfinite(values).any():
                    self.finite.add((score, lang))
                key = (score, str(lang), kept)
                self.counts[key] = self.counts.get(key, 0) + _histogram(values, edges)
                if kept:
                    self.buckets.setdefault((score, str(lang)), _KeyCounts()).add(_order_keys(values) >> 16)

    def _quantiles(self, kept_paths: list[str]) -> dict[tuple[str, str], dict[str, float]]:
        """The kept rows' quantiles per (score, language): the second pass, over the buckets that hold them."""
        wanted: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
        for key, buckets in self.buckets.items():
            ranks = {r for lo, hi, _ in _quantile_ranks(buckets.total).values() for r in (lo, hi)}
            wanted[key] = {r: buckets.locate(r) for r in ranks}  # rank -> (bucket, rank inside it)
        if not wanted:
            return {}
        inside = {key: np.unique(np.asarray([b for b, _ in w.values()], dtype=np.uint32)) for key, w in wanted.items()}
        exact = {key: _KeyCounts() for key in wanted}
        score_cols = [s for s in SCORE_EDGES if any(k[0] == s for k in wanted)]
        for path in kept_paths:
            for rows in _batches(path, ["lang", *score_cols], []):
                for (lang,), part in rows.partition_by("lang", as_dict=True).items():
                    for score in score_cols:
                        if (score, lang) in wanted:
                            keys = _order_keys(_values(part[score]))
                            exact[(score, lang)].add(keys[np.isin(keys >> 16, inside[(score, lang)])])
        out = {}
        for key, w in wanted.items():
            value = {r: _key_value(exact[key].locate(within, bucket)[0]) for r, (bucket, within) in w.items()}
            out[key] = {
                name: round(_lerp(value[lo], value[hi], t), 4)
                for name, (lo, hi, t) in _quantile_ranks(self.buckets[key].total).items()
            }
        return out

    def _bins(self, score: str, lang: str, kept: bool) -> list[int]:
        counts = self.counts.get((score, lang, kept))
        return [int(c) for c in counts] if counts is not None else [0] * (len(SCORE_EDGES[score]) - 1)

    def result(self, kept_paths: list[str]) -> dict[str, Any]:
        quantiles = self._quantiles(kept_paths)
        scores: dict[str, Any] = {}
        for score, edges in SCORE_EDGES.items():
            per: dict[str, Any] = {}
            for lang in self.manifest["languages"]:
                if lang not in self.langs_of[score] or (score, lang) not in self.finite:
                    continue
                per[lang] = {
                    "kept": self._bins(score, lang, True),
                    "rejected": self._bins(score, lang, False),
                    "kept_quantiles": quantiles.get((score, lang)),
                    "threshold": _thresholds(self.manifest, lang).get(score) if lang != self.src else None,
                }
            if per:
                scores[score] = {"edges": edges, "help": SCORE_HELP[score], "per_language": per}
        return scores


class _LanguageId:
    """Per language: kept rows language ID identified, and how many of them it put in their own language.
    Memory: one count per (language, language-ID label)."""

    def __init__(self, langs: list[str]) -> None:
        self.langs = langs
        self.counts: Counter[tuple[str, str | None]] = Counter()

    def add_kept(self, kept: pl.DataFrame) -> None:
        for lang, lid_lang, n in kept.group_by("lang", "lid_lang").len().iter_rows():
            self.counts[(lang, lid_lang)] += n

    def result(self) -> dict[str, Any]:
        lid: dict[str, Any] = {}
        for lang in self.langs:
            identified = sum(n for (row_lang, lid_lang), n in self.counts.items() if row_lang == lang and lid_lang is not None)
            agree = self.counts.get((lang, lid_label(lang)), 0)  # pt-BR: pt
            lid[lang] = {"identified": identified, "agree": agree, "agreement": _ratio(agree, identified)}
        return lid


def _duplicate_clusters(rejected_paths: list[str], src: str) -> dict[str, Any]:
    """Per duplicate reason (exact, near): clusters of source rows, their size histogram and the largest.

    A cluster (rows with the same ``dup_of``) may span rejected files, so each file gives, per
    reason, a 64-bit hash of ``dup_of`` for each of its duplicate source rows, and the clusters are
    counted over all of them at the end: 8 bytes per rejected duplicate, nothing per kept row (two
    clusters share a hash with probability about n^2 / 2^65, 3e-8 for a million clusters)."""
    hashes: dict[str, list[np.ndarray]] = {reason: [] for reason in _DUPLICATE_REASONS}
    for path in rejected_paths:
        rows = (
            pl.scan_parquet(path)
            .filter(pl.col("drop_reason").is_in(_DUPLICATE_REASONS) & (pl.col("lang") == src))
            .select("drop_reason", pl.col("dup_of").hash(seed=0))
            .collect()
        )
        for (reason,), part in rows.group_by("drop_reason"):
            hashes[str(reason)].append(part["dup_of"].to_numpy())
    duplicates: dict[str, Any] = {}
    for reason in _DUPLICATE_REASONS:
        if not hashes[reason]:
            continue
        _, per_cluster = np.unique(np.concatenate(hashes[reason]), return_counts=True)
        sizes, clusters = np.unique(per_cluster + 1, return_counts=True)  # + the representative, which is kept
        duplicates[reason] = {
            "clusters": int(clusters.sum()),
            "concepts_dropped": int(((sizes - 1) * clusters).sum()),
            "size_histogram": {str(s): int(c) for s, c in zip(sizes.tolist(), clusters.tolist(), strict=True)},
            "largest": int(sizes.max()),
        }
    return duplicates


def _timings(stats: dict[str, Any]) -> dict[str, Any]:
    """The build's wall time and each step's seconds, rows and rows per second."""
    steps = {
        name: {
            "seconds": round(float(s.get("seconds") or 0.0), 4),
            "rows": int(s.get("rows", 0)),
            "rows_per_s": float(s.get("rows_per_s") or 0.0),
        }
        for name, s in stats.get("steps", {}).items()
    }
    return {"build_seconds": stats.get("build_seconds"), "steps": steps}


def _kept_by_domain(stats: dict[str, Any], targets: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Target rows kept per language and length domain of the source, from the select step's
    ``domain.<lang>.<domain>.kept`` / ``.dropped`` counters: ``{lang: {domain: {kept, total, share}}}``
    (``share`` null for no rows). Empty when the statistics hold no such counter (a build made before
    they were counted, or one without a target row to count)."""
    counters = ((stats.get("steps") or {}).get("select") or {}).get("counters") or {}
    found: dict[tuple[str, str], dict[str, int]] = {}
    for name, n in counters.items():
        if not name.startswith("domain."):
            continue
        parts = name[len("domain.") :].rsplit(".", 2)  # a language code may hold a dot; a domain never does
        if len(parts) == 3 and parts[1] in DOMAINS and parts[2] in ("kept", "dropped"):
            lang, domain, outcome = parts
            found.setdefault((lang, domain), {"kept": 0, "dropped": 0})[outcome] += int(n)
    if not found:
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lang in targets:
        out[lang] = {}
        for domain in DOMAINS:
            c = found.get((lang, domain), {"kept": 0, "dropped": 0})
            total = c["kept"] + c["dropped"]
            out[lang][domain] = {"kept": c["kept"], "total": total, "share": _ratio(c["kept"], total) if total else None}
    return out


def domain_cell(c: dict[str, Any]) -> str:
    """A cell of the kept-per-domain table (one ``kept_by_domain[lang][domain]``): ``"37.0% (37/100)"``,
    or ``"-"`` when there are no rows."""
    return f"{100 * c['share']:.1f}% ({c['kept']:,}/{c['total']:,})" if c["total"] else "-"


def _chars(fields: list[str]) -> pl.Expr:
    return pl.sum_horizontal([pl.col(f).str.len_chars().fill_null(0) for f in fields])


class _Lengths:
    """Source vs target length (characters) of up to :data:`LENGTH_SAMPLE` pairs per language.

    ``pairs`` is exact. The sample is the pairs with the smallest hash of their ``concept_id`` (ties:
    the id, then rejected before kept), so it does not depend on how the rows are batched and the same
    build always shows the same pairs; only it is held (``LENGTH_SAMPLE`` rows per language)."""

    def __init__(self, src: str, targets: list[str], fields: list[str]) -> None:
        self.src, self.targets, self.fields = src, targets, fields
        self.pairs: Counter[str] = Counter()
        self.sample: pl.DataFrame | None = None

    def add_kept(self, kept: pl.DataFrame) -> None:
        self._add(kept, kept=True)

    def add_rejected(self, rejected: pl.DataFrame) -> None:
        self._add(rejected, kept=False)

    def _add(self, rows: pl.DataFrame, kept: bool) -> None:
        source = (
            rows.filter(pl.col("lang") == self.src)
            .unique("concept_id", keep="first", maintain_order=True)
            .select("concept_id", pl.col("_chars").alias("src_chars"))
        )
        pairs = rows.filter(pl.col("lang").is_in(self.targets) & (pl.col("_chars") > 0)).join(source, on="concept_id", how="left")
        # A kept target's source row is kept too (select rejects the targets of a rejected source), in the
        # same chunk. A rejected target's source row is in the same rejected file (one input batch) when it
        # was rejected; else it was kept, and a kept row has text: its length is looked up for the sample only.
        has_source = pl.col("src_chars") > 0
        pairs = pairs.filter(has_source if kept else has_source | pl.col("src_chars").is_null())
        if not pairs.height:
            return
        for lang, n in pairs.group_by("lang").len().iter_rows():
            self.pairs[lang] += n
        found = pairs.select(
            "lang",
            pl.col("concept_id").hash(seed=0).alias("_order"),
            "concept_id",
            pl.lit(kept).alias("kept"),
            pl.col("src_chars").cast(pl.Int64),
            pl.col("_chars").cast(pl.Int64).alias("tgt_chars"),
        )
        if self.sample is not None:
            found = pl.concat([self.sample, found])
        sample = found.sort("lang", "_order", "concept_id", "kept").group_by("lang", maintain_order=True).head(LENGTH_SAMPLE)
        # a copy: Polars' strings are views that would keep every chunk's whole text buffer alive
        self.sample = pl.from_arrow(sample.to_arrow())  # type: ignore[assignment]

    def _source_chars(self, paths: list[str], ids: list[str]) -> pl.DataFrame:
        if not paths or not ids:
            return pl.DataFrame(schema={"concept_id": pl.String, "_found": pl.Int64})
        return (
            pl.scan_parquet(paths)
            .filter((pl.col("lang") == self.src) & pl.col("concept_id").is_in(ids))
            .select("concept_id", _chars(self.fields).cast(pl.Int64).alias("_found"))
            .collect(engine="streaming")
        )

    def result(self, kept_paths: list[str], rejected_paths: list[str]) -> dict[str, Any]:
        if self.sample is None:
            return {}
        sample = self.sample
        ids = sample.filter(pl.col("src_chars").is_null())["concept_id"].unique().to_list()
        if ids:  # rejected targets of kept sources: the sources' lengths, from the shards (a kept row first)
            found = pl.concat([self._source_chars(kept_paths, ids), self._source_chars(rejected_paths, ids)])
            found = found.filter(pl.col("_found") > 0).unique("concept_id", keep="first", maintain_order=True)
            sample = (
                sample.join(found, on="concept_id", how="left", maintain_order="left")
                .with_columns(pl.coalesce("src_chars", "_found").alias("src_chars"))
                .filter(pl.col("src_chars").is_not_null())
            )
        out: dict[str, Any] = {}
        for lang in self.targets:
            if not self.pairs[lang]:
                continue
            part = sample.filter(pl.col("lang") == lang).sort("_order", "concept_id", "kept")
            out[lang] = {
                "pairs": self.pairs[lang],
                "src_chars": part["src_chars"].to_list(),
                "tgt_chars": part["tgt_chars"].to_list(),
                "kept": part["kept"].to_list(),
            }
        return out


def _verification_summary(manifest: dict[str, Any]) -> dict[str, Any] | None:
    v = manifest.get("verification")
    if not v:
        return None
    gates = v.get("gates") or {}
    return {
        "embedder": v.get("embedder"),
        "model": v.get("model"),
        "thresholds": {lang: round(float(g["threshold"]), 4) for lang, g in gates.items()},
        "calibrated_precision": {lang: g.get("precision") for lang, g in gates.items()},
        "calibrated_recall": {lang: g.get("recall") for lang, g in gates.items()},
    }


class _Examples:
    """A few rejected rows per drop reason, each next to its concept's source text.

    Per reason, the :data:`EXAMPLES_PER_REASON` distinct concepts with the smallest hash of their
    ``concept_id`` (a target row over the source row): those of each rejected file merged with those
    found so far, so only the picked rows are held; their texts are read at the end."""

    def __init__(self, src: str, fields: list[str]) -> None:
        self.src, self.fields = src, fields
        self.picked: pl.DataFrame | None = None

    def _pick(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Distinct concepts per reason, in a stable pseudo-random order; a target row over the source row."""
        return (
            rows.with_columns(pl.col("concept_id").hash(seed=0).alias("_order"), (pl.col("lang") == self.src).alias("_is_src"))
            .sort(["_order", "_is_src", "lang"])
            .unique(["drop_reason", "concept_id"], keep="first", maintain_order=True)
            .group_by("drop_reason", maintain_order=True)
            .head(EXAMPLES_PER_REASON)
        )

    def add_rejected(self, rejected: pl.DataFrame) -> None:
        picked = self._pick(rejected.drop("_chars"))
        self.picked = picked if self.picked is None else self._pick(pl.concat([self.picked, picked]))

    def result(
        self, kept_paths: list[str], rejected_paths: list[str], quarantine_paths: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        fields, src = self.fields, self.src
        if self.picked is not None and self.picked.height:
            ids = self.picked["concept_id"].unique().to_list()
            cols = ["concept_id", "lang", *fields]
            # the rejected rows of the picked concepts with their texts (the picked rows, rejected source rows)
            texts = (
                pl.scan_parquet(rejected_paths)
                .filter(pl.col("concept_id").is_in(ids))
                .select(*cols, "drop_reason")
                .collect(engine="streaming")
            )
            picked = self.picked.join(
                texts.unique(["concept_id", "lang", "drop_reason"], keep="first", maintain_order=True),
                on=["concept_id", "lang", "drop_reason"],
                how="left",
                maintain_order="left",
            )
            is_source = (pl.col("lang") == src) & pl.col("concept_id").is_in(ids)
            kept = pl.scan_parquet(kept_paths).filter(is_source).select(cols).collect(engine="streaming") if kept_paths else None
            found = [f for f in (kept, texts.filter(is_source).select(cols)) if f is not None and f.height]
            sources = pl.concat(found, how="vertical_relaxed").unique("concept_id", keep="first") if found else pl.DataFrame()
            source_text = {row["concept_id"]: _text(row, fields) for row in sources.iter_rows(named=True)}
            for row in picked.sort(["drop_reason", "_order"]).iter_rows(named=True):
                scores = {
                    s: round(float(row[s]), 4) for s in SCORE_EDGES if s in row and row[s] is not None and s != "lid_expected"
                }
                if row.get("lid_expected") is not None:
                    scores["lid_expected"] = round(float(row["lid_expected"]), 4)
                out.setdefault(row["drop_reason"], []).append(
                    {
                        "concept_id": row["concept_id"],
                        "lang": row["lang"],
                        "text": _text(row, fields),
                        "source_text": source_text.get(row["concept_id"]) if row["lang"] != src else None,
                        "detail": row["drop_detail"],
                        "lid_lang": row["lid_lang"],
                        "scores": scores,
                    }
                )
        if quarantine_paths:
            quarantine = (
                pl.scan_parquet(quarantine_paths)
                .select("source_file", "source_line", "error")
                .head(EXAMPLES_PER_REASON)
                .collect()
            )
            if quarantine.height:
                out["quarantined"] = [
                    {"source_file": r["source_file"], "source_line": r["source_line"], "error": r["error"]}
                    for r in quarantine.iter_rows(named=True)
                ]
        return out


def metrics(report: dict[str, Any]) -> dict[str, float]:
    """The flat ``name -> number`` view of a report that ``--fail-under``/``--fail-over`` check.

    Names: ``kept_ratio``, ``concept_kept_ratio``, ``complete_ratio``, ``kept_rows``,
    ``concepts_kept``, ``concepts_complete``, ``quarantined_rows``; ``kept_ratio.<lang>``,
    ``kept_rows.<lang>``; ``drop_rate.<reason>``; ``lid_agreement.<lang>``;
    ``<score>.median.<lang>`` for each verification score.
    """
    h = report["headline"]
    m: dict[str, float] = {
        k: float(h[k])
        for k in (
            "kept_ratio",
            "concept_kept_ratio",
            "complete_ratio",
            "kept_rows",
            "concepts_kept",
            "concepts_complete",
            "quarantined_rows",
        )
    }
    for lang, d in report["per_language"].items():
        m[f"kept_ratio.{lang}"] = float(d["kept_ratio"])
        m[f"kept_rows.{lang}"] = float(d["kept_rows"])
    for reason, d in report["drop_reasons"].items():
        m[f"drop_rate.{reason}"] = float(d["rate"])
    for lang, d in report["language_id"].items():
        m[f"lid_agreement.{lang}"] = float(d["agreement"])
    for score, d in report["scores"].items():
        for lang, s in d["per_language"].items():
            if s["kept_quantiles"]:
                m[f"{score}.median.{lang}"] = float(s["kept_quantiles"]["median"])
    return m
