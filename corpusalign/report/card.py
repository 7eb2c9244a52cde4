"""Dataset cards in the format the Hugging Face Hub reads, written from a build's report.

A card is a ``README.md`` with YAML front matter (``language``, ``license``, ``task_categories``,
``size_categories``, ``configs`` pointing at the Parquet shards, ...) and Markdown sections:
sources and licences, provenance, how the corpus was built (the resolved pipeline, models and
thresholds), statistics from ``report.json`` and known limitations.

What the build cannot know (the licence of each source, where it came from, its caveats) comes from
a card file, ``card.yaml``, next to the inputs or given with ``--meta``::

    pretty_name: My support corpus
    description: Customer-support answers in five languages.
    sources:
      - name: Support KB
        match: "kb_*.jsonl"          # glob over input file names
        license: cc-by-4.0           # a Hub licence identifier, or "other"
        license_note: "CC BY 4.0, (c) Example Corp."
        provenance: "Exported from the knowledge base on 2026-01-10."
    limitations:
      - "Answers reflect the product as of January 2026."

The card goes next to the shards (``DIR/README.md``, so that ``datasets.load_dataset(DIR)`` reads
its ``configs``) and into ``data_cards/NAME.md``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from corpusalign.report.collect import DOMAIN_HELP, domain_cell
from corpusalign.store.manifest import entry_path, read_manifest
from corpusalign.store.schema import SCHEMA_VERSION, SHARD_SCHEMA
from corpusalign.verify.scores import DOMAINS

CARD_META = "card.yaml"
CARD_README = "README.md"

#: The Hub's size buckets (as in the ``datasets`` package's ``size_categories.json``), by row count.
_SIZE_BUCKETS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)


class CardError(ValueError):
    """A card file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Source:
    name: str
    match: str
    license: str
    license_note: str = ""
    provenance: str = ""


@dataclass(frozen=True)
class CardMeta:
    """What a card says that the build cannot know. Every field is optional."""

    pretty_name: str | None = None
    description: str = ""
    license: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    limitations: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "card file") -> CardMeta:
        known = {"pretty_name", "description", "license", "sources", "limitations", "tags"}
        unknown = set(d) - known
        if unknown:
            raise CardError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        sources = []
        for i, s in enumerate(d.get("sources") or []):
            if not isinstance(s, dict) or not {"name", "match", "license"} <= set(s):
                raise CardError(f"{where}: sources[{i}] needs name, match and license")
            extra = set(s) - {"name", "match", "license", "license_note", "provenance"}
            if extra:
                raise CardError(f"{where}: sources[{i}] has unknown keys {sorted(extra)}")
            sources.append(Source(**{k: str(v) for k, v in s.items()}))
        lic = d.get("license") or ()
        return cls(
            pretty_name=d.get("pretty_name"),
            description=str(d.get("description") or ""),
            license=tuple([lic] if isinstance(lic, str) else lic),
            sources=tuple(sources),
            limitations=tuple(str(x) for x in d.get("limitations") or ()),
            tags=tuple(str(x) for x in d.get("tags") or ()),
        )


def load_meta(path: str | Path) -> CardMeta:
    from corpusalign.config import ConfigError, ParameterFileNotFound, load_yaml

    path = Path(path)
    try:
        data = load_yaml(path, "card file") or {}
    except ParameterFileNotFound:
        raise
    except ConfigError as exc:  # a syntax error or a repeated key, with file:line:column
        raise CardError(str(exc)) from None
    if not isinstance(data, dict):
        raise CardError(f"{path}: expected a mapping at the top level")
    return CardMeta.from_dict(data, where=str(path))


def find_meta(manifest: dict[str, Any]) -> Path | None:
    """A ``card.yaml`` in an input directory (or beside an input file) of the build, if any."""
    for inp in manifest.get("inputs", []):
        p = Path(inp)
        for cand in (p / CARD_META, p.parent / CARD_META):
            if cand.is_file():
                return cand
    return None


def size_category(rows: int) -> str:
    for bound, name in _SIZE_BUCKETS:
        if rows < bound:
            return name
    return "1B<n<10B" if rows < 10_000_000_000 else "10B<n<100B"


def _task_categories(fields: list[str]) -> list[str]:
    if "prompt" in fields:
        return ["text-generation", "translation"]
    return ["translation"]


def _language_creators(report: dict[str, Any]) -> list[str]:
    origins = {k.split(":")[0] for parts in report["provenance"].values() for k in parts}
    out = []
    if origins & {"source", "human"}:
        out.append("found")
    if "machine" in origins:
        out.append("machine-generated")
    return out or ["found"]


def _source_rows(root: Path, manifest: dict[str, Any], meta: CardMeta) -> dict[str, int]:
    """Kept concepts per declared source (matched on the input file name)."""
    paths = [str(entry_path(root, s.get("path"))) for s in manifest["shards"]]
    if not paths or not meta.sources:
        return {}
    src = manifest["source_language"]
    files = (
        pl.scan_parquet(paths)
        .filter(pl.col("lang") == src)
        .group_by("source_file")
        .agg(pl.col("concept_id").n_unique().alias("n"))
        .collect()
    )
    out = {s.name: 0 for s in meta.sources}
    for path, n in files.iter_rows():
        for s in meta.sources:
            if fnmatch.fnmatch(Path(path).name, s.match):
                out[s.name] += int(n)
                break
    return out


def front_matter(report: dict[str, Any], manifest: dict[str, Any], meta: CardMeta, name: str) -> dict[str, Any]:
    licenses = list(meta.license) or sorted({s.license for s in meta.sources}) or ["unknown"]
    configs: list[dict[str, Any]] = [
        {"config_name": "default", "data_files": [{"split": "train", "path": "shards/*.parquet"}], "default": True}
    ]
    if manifest.get("rejected"):
        configs.append({"config_name": "rejected", "data_files": [{"split": "train", "path": "rejected/*.parquet"}]})
    fm: dict[str, Any] = {
        "pretty_name": meta.pretty_name or name,
        "language": list(report["languages"]),
        "license": licenses[0] if len(licenses) == 1 else licenses,
        "multilinguality": ["multilingual", "translation"],
        "task_categories": _task_categories(report["fields"]),
        "size_categories": [size_category(report["headline"]["kept_rows"])],
        "source_datasets": ["original"],
        "language_creators": _language_creators(report),
        "annotations_creators": ["no-annotation"],
        "tags": ["corpusalign", "parallel-corpus", "concept-aligned", *meta.tags],
        "configs": configs,
    }
    if "other" in licenses:
        fm["license_name"] = "see-sources"
        fm["license_details"] = "; ".join(f"{s.name}: {s.license_note or s.license}" for s in meta.sources) or "see the card"
    return fm


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(report: dict[str, Any], manifest: dict[str, Any], meta: CardMeta, name: str, source_rows: dict[str, int]) -> str:
    """The dataset card (README.md) as Markdown with YAML front matter, one function per section."""
    fm = front_matter(report, manifest, meta, name)
    sections = (
        _card_intro(report, meta, fm),
        _card_languages(report),
        _card_schema(report),
        _card_sources(meta, source_rows),
        _card_provenance(report),
        _card_how_built(report, manifest),
        _card_statistics(report),
        [
            "## Known limitations",
            "",
            *(f"- {x}" for x in meta.limitations),
            *(f"- {x}" for x in _automatic_limitations(report)),
            "",
        ],
    )
    return "\n".join(line for section in sections for line in section)


def _card_intro(report: dict[str, Any], meta: CardMeta, fm: dict[str, Any]) -> list[str]:
    """Front matter, title, description, what the corpus is and how to load it."""
    h = report["headline"]
    src = report["source_language"]
    targets = [lg for lg in report["languages"] if lg != src]
    lines = ["---", yaml.safe_dump(fm, sort_keys=False, allow_unicode=True, width=100).rstrip(), "---", ""]
    lines += [f"# {fm['pretty_name']}", ""]
    if meta.description:
        lines += [meta.description, ""]
    return lines + [
        f"A concept-aligned parallel corpus built with corpusalign {report['corpusalign_version']}: every language "
        f"version of a record is one row, and all versions of a record share a `concept_id`. Source (anchor) language "
        f"`{src}`; target languages {', '.join(f'`{t}`' for t in targets)}. {h['concepts_kept']:,} concepts and "
        f"{h['kept_rows']:,} rows; {h['concepts_complete']:,} concepts have every language.",
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/directory")  # the kept rows (config "default")',
        'de = ds["train"].filter(lambda r: r["lang"] == "de")',
        'rejected = load_dataset("path/to/this/directory", "rejected")  # dropped rows with drop_reason',
        "```",
        "",
        "The shards are plain Parquet (`shards/*.parquet`, zstd): polars, pyarrow and DuckDB read them directly. "
        "All language versions of a concept are in the same shard, sorted by (`concept_id`, `lang`), so a trainer can "
        "read aligned batches shard by shard.",
        "",
    ]


def _card_languages(report: dict[str, Any]) -> list[str]:
    """Rows kept and rejected per language, kept per length domain, concepts per language set."""
    src = report["source_language"]
    return [
        "## Languages and size",
        "",
        _table(
            ["language", "rows kept", "kept of concepts in", "rows rejected", "not in the input", "language ID agrees"],
            [
                [
                    f"`{lg}`" + (" (source)" if lg == src else ""),
                    f"{d['kept_rows']:,}",
                    f"{100 * d['kept_ratio']:.1f}%",
                    f"{d['rejected_rows']:,}",
                    f"{d.get('not_in_input_rows', 0):,}",
                    f"{100 * report['language_id'][lg]['agreement']:.1f}%" if report["language_id"][lg]["identified"] else "-",
                ]
                for lg, d in report["per_language"].items()
            ],
        ),
        "",
        *_kept_by_domain(report),
        "Concepts by the set of languages they have:",
        "",
        _table(
            ["languages", "concepts"],
            [[", ".join(p["languages"]), f"{p['concepts']:,}"] for p in report["completeness"]["patterns"]],
        ),
        "",
    ]


def _card_schema(report: dict[str, Any]) -> list[str]:
    """The shard schema and the text fields of this corpus."""
    return [
        "## Schema",
        "",
        f"corpusalign shard schema version {SCHEMA_VERSION} (`corpusalign/store/schema.py`); the card's `configs` point at "
        "these files. Text fields used by this corpus: " + ", ".join(f"`{f}`" for f in report["fields"]) + ".",
        "",
        _table(["column", "type"], [[f"`{f.name}`", f"`{f.type}`"] for f in SHARD_SCHEMA]),
        "",
    ]


def _card_sources(meta: CardMeta, source_rows: dict[str, int]) -> list[str]:
    """Each source's input files, licence and concepts kept (or a warning that none were described)."""
    lines = [
        "## Sources and licences",
        "",
    ]
    if meta.sources:
        lines += [
            _table(
                ["source", "input files", "licence", "concepts kept"],
                [[s.name, f"`{s.match}`", s.license_note or s.license, f"{source_rows.get(s.name, 0):,}"] for s in meta.sources],
            ),
            "",
        ]
        for s in meta.sources:
            if s.provenance:
                lines += [f"- **{s.name}**: {s.provenance}"]
        lines += [""]
    else:
        lines += [
            "No card file described the sources, so their licences are unknown here: add a `card.yaml` (see "
            "`corpusalign card --help`) before publishing.",
            "",
        ]
    return lines


def _card_provenance(report: dict[str, Any]) -> list[str]:
    """Who made each row, per language, and the translators used."""
    lines = [
        "## Provenance",
        "",
        "Who made each row (`origin:translator`, per language):",
        "",
        _table(
            ["language", "rows by origin:translator"],
            [[f"`{lg}`", ", ".join(f"{k} {v:,}" for k, v in p.items()) or "-"] for lg, p in report["provenance"].items()],
        ),
        "",
    ]
    for tname, t in report["translators"].items():
        lines += [f"- translator `{tname}`: origin `{t.get('origin')}`, model `{t.get('model') or '-'}`"]
    lines += ["", "Every row also carries its input file and line (`source_file`, `source_line`).", ""]
    return lines


def _card_how_built(report: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """The steps, the verification gate's thresholds and the resolved pipeline."""
    v = report.get("verification")
    lines = [
        "## How it was built",
        "",
        "Steps: read -> translate -> normalise -> language ID -> dedup (exact and MinHash near-duplicates) -> "
        + ("verify (multilingual sentence embeddings and a calibrated gate) -> " if v else "")
        + "select -> shards.",
        "",
    ]
    if v:
        lines += [
            f"Verification embedder `{v['embedder']}` ({v['model']}). Gate thresholds on `verify_p` per language, with the "
            "precision and recall measured when the gate was calibrated:",
            "",
            _table(
                ["language", "threshold", "calibrated precision", "calibrated recall"],
                [
                    [f"`{lg}`", t, v["calibrated_precision"].get(lg), v["calibrated_recall"].get(lg)]
                    for lg, t in v["thresholds"].items()
                ],
            ),
            "",
        ]
    else:
        lines += ["Verification was off for this build: pairs were not checked for semantic equivalence.", ""]
    lines += [
        "The resolved pipeline (from `manifest.json`):",
        "",
        "```yaml",
        yaml.safe_dump(manifest["config"], sort_keys=False, allow_unicode=True, width=100).rstrip(),
        "```",
        "",
        f"Build fingerprint `{report['build_fingerprint']}`; manifest digest `{report['manifest_digest']}`.",
        "",
    ]
    return lines


def _card_statistics(report: dict[str, Any]) -> list[str]:
    """Input, kept, rejected and quarantined rows; the drop reasons per language."""
    h = report["headline"]
    langs = report["languages"]
    return [
        "## Statistics",
        "",
        f"Input: {h['input_records']:,} records, {h['input_rows']:,} rows (concepts x languages). Kept {h['kept_rows']:,} "
        f"({100 * h['kept_ratio']:.1f}%), rejected {h['rejected_rows']:,}, not in the input {h.get('not_in_input_rows', 0):,}, "
        f"quarantined {h['quarantined_rows']:,}; "
        f"accounting {'holds' if h['accounting_ok'] else 'VIOLATED'}.",
        "",
        _table(
            ["drop reason", "rows", "of input rows", *langs],
            [
                [r, f"{d['rows']:,}", f"{100 * d['rate']:.2f}%", *(d["per_language"].get(lg, "") for lg in langs)]
                for r, d in report["drop_reasons"].items()
            ],
        ),
        "",
        "`report.json` and `report.html` beside the shards hold every figure (`corpusalign report DIR`).",
        "",
    ]


def _kept_by_domain(report: dict[str, Any]) -> list[str]:
    """Lines of the card's "kept per domain and language" table (none when the report has no such counts)."""
    by_lang = report.get("kept_by_domain") or {}
    if not by_lang:
        return []
    return [
        "Target rows kept per length domain of the source text and language (rows missing from the input not counted):",
        "",
        _table(
            ["domain", *(f"`{lg}`" for lg in by_lang)],
            [[f"{d} ({DOMAIN_HELP.get(d, '')})", *(domain_cell(by_lang[lg][d]) for lg in by_lang)] for d in DOMAINS],
        ),
        "",
    ]


def _automatic_limitations(report: dict[str, Any]) -> list[str]:
    out = []
    src = report["source_language"]
    for lg, d in report["per_language"].items():
        if lg != src and d["kept_ratio"] < 0.5:
            out.append(f"`{lg}` is thin: {d['kept_rows']:,} rows, {100 * d['kept_ratio']:.1f}% of the input concepts.")
        lid = report["language_id"][lg]
        if lid["identified"] and lid["agreement"] < 0.95:
            out.append(
                f"Language ID agrees with the label on only {100 * lid['agreement']:.1f}% of `{lg}` rows; fastText lid.176 is "
                "weaker on this language and on short texts, so the verification gate does not rely on it alone."
            )
    machine = sum(v for p in report["provenance"].values() for k, v in p.items() if k.startswith("machine:"))
    if machine:
        out.append(f"{machine:,} rows are machine translations (`origin=machine`); see the provenance table.")
    if not report.get("verification"):
        out.append("Pairs were not verified for semantic equivalence (verification off).")
    else:
        out.append(
            "Verification keeps pairs that an embedding model and a calibrated gate judge faithful; it can miss subtle "
            "meaning changes and extra content in long paragraphs (see corpusalign's docs/verification.md)."
        )
    return out


def write_card(
    corpus: str | Path,
    *,
    meta_path: str | Path | None = None,
    name: str | None = None,
    cards_dir: str | Path | None = "data_cards",
    report: dict[str, Any] | None = None,
) -> tuple[str, list[Path]]:
    """Write the card of the build in ``corpus``; returns the text and the paths written."""
    from corpusalign.report import current_report
    from corpusalign.store.files import write_text

    root = Path(corpus)
    manifest = read_manifest(root)
    report = report or current_report(root)
    meta_file = Path(meta_path) if meta_path else find_meta(manifest)
    meta = load_meta(meta_file) if meta_file else CardMeta()
    name = name or root.resolve().name
    text = render(report, manifest, meta, name, _source_rows(root, manifest, meta))
    paths = [write_text(text, root / CARD_README)]
    if cards_dir is not None:
        paths.append(write_text(text, Path(cards_dir) / f"{name}.md"))
    return text, paths
