"""Reports, comparisons, quality gates and data cards, checked against builds whose content is known."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from corpusalign.cli import app
from corpusalign.report import REPORT_HTML, REPORT_JSON, write_report
from corpusalign.report.card import front_matter, size_category, write_card
from corpusalign.report.checks import CheckError, evaluate, parse
from corpusalign.report.collect import REPORT_VERSION, collect
from corpusalign.report.compare import compare

try:
    from helpers_store import write_synthetic_corpus
except ImportError:  # tests/ imported as a package
    from tests.helpers_store import write_synthetic_corpus

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "report.md"


def _known_corpus(udhr_rows: list[dict[str, Any]], path: Path) -> Path:
    """Six UDHR concepts in en/de/ja plus one malformed line:

    * 4 complete concepts;
    * 1 exact copy of the first concept under another id (a duplicate: all 3 rows rejected);
    * 1 concept without Japanese (``missing_target`` for ja; en and de kept);
    * 1 line that is not JSON (quarantined).
    """
    good = [r for r in udhr_rows if r["concept_id"].startswith("udhr.art")][:5]
    lines = [json.dumps({k: r[k] for k in ("concept_id", "en", "de", "ja")}, ensure_ascii=False) for r in good[:4]]
    dup = dict(good[0], concept_id="copy.of.first")
    lines.append(json.dumps({k: dup[k] for k in ("concept_id", "en", "de", "ja")}, ensure_ascii=False))
    lines.append(json.dumps({"concept_id": good[4]["concept_id"], "en": good[4]["en"], "de": good[4]["de"]}, ensure_ascii=False))
    lines.append('{"concept_id": "broken", "en": ')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def known_build(tmp_path: Path, udhr_rows, run_build) -> Path:
    corpus = _known_corpus(udhr_rows, tmp_path / "known.jsonl")
    result = run_build(corpus, tmp_path / "out", src="en", tgt=["de", "ja"])
    return Path(result.output)


def test_report_numbers_match_a_known_build(known_build: Path) -> None:
    r = collect(known_build)
    h = r["headline"]
    assert r["report_version"] == REPORT_VERSION
    assert (h["input_records"], h["concepts_in"], h["input_rows"]) == (7, 6, 6 * 3 + 1)
    # the ja slot with no text is not in the input: counted apart from the rows a step rejected
    assert (h["kept_rows"], h["rejected_rows"], h["not_in_input_rows"], h["quarantined_rows"]) == (4 * 3 + 2, 3, 1, 1)
    assert h["kept_rows"] + h["rejected_rows"] + h["not_in_input_rows"] + h["quarantined_rows"] == h["input_rows"]
    assert (h["concepts_kept"], h["concepts_complete"]) == (5, 4)
    assert h["accounting_ok"] and h["kept_ratio"] == pytest.approx(14 / 19, abs=1e-6)
    assert h["complete_ratio"] == pytest.approx(4 / 6, abs=1e-6)

    assert r["per_language"]["ja"]["kept_rows"] == 4 and r["per_language"]["ja"]["drop_reasons"] == {"duplicate": 1}
    assert (r["per_language"]["ja"]["rejected_rows"], r["per_language"]["ja"]["not_in_input_rows"]) == (1, 1)
    assert r["per_language"]["de"]["kept_rows"] == 5
    assert r["drop_reasons"]["duplicate"]["rows"] == 3
    assert r["drop_reasons"]["duplicate"]["per_language"] == {"en": 1, "de": 1, "ja": 1}
    assert r["drop_reasons"]["missing_target"]["rows"] == 1
    assert r["drop_reasons"]["quarantined"]["rows"] == 1
    assert r["metrics"]["drop_rate.duplicate"] == pytest.approx(3 / 19, abs=1e-6)

    assert r["completeness"]["patterns"] == [
        {"languages": ["en", "de", "ja"], "concepts": 4},
        {"languages": ["en", "de"], "concepts": 1},
    ]
    assert r["completeness"]["concepts_per_language"] == {"en": 5, "de": 5, "ja": 4}
    assert r["duplicates"]["duplicate"] == {"clusters": 1, "concepts_dropped": 1, "size_histogram": {"2": 1}, "largest": 2}
    assert r["provenance"]["de"] == {"human:tm": 5} and r["provenance"]["en"] == {"source:-": 5}

    # examples show the dropped row next to its source text; the quarantined line with its position
    (dup,) = [e for e in r["examples"]["duplicate"] if e["lang"] != "en"][:1]
    assert dup["concept_id"] == "copy.of.first" and dup["source_text"].startswith("All human beings are born free")
    (missing,) = r["examples"]["missing_target"]
    assert missing["lang"] == "ja" and missing["text"] is None and missing["source_text"]
    (bad,) = r["examples"]["quarantined"]
    assert bad["source_line"] == 7 and bad["source_file"].endswith("known.jsonl")

    # verification was off: no verification scores, language-ID confidence still there
    assert r["verification"] is None
    assert set(r["scores"]) == {"lid_expected"}
    lid = r["scores"]["lid_expected"]["per_language"]["de"]
    assert sum(lid["kept"]) == 5 and sum(lid["rejected"]) == 1
    assert r["timings"]["steps"]["langid"]["rows"] == 18


def test_scores_and_thresholds_from_a_verified_build(tmp_path: Path, udhr_rows, run_build) -> None:
    corpus = _known_corpus(udhr_rows, tmp_path / "known.jsonl")
    out = run_build(
        corpus, tmp_path / "out", src="en", tgt=["de", "ja"], verify__enabled=True, verify__embedder="e5-native"
    ).output
    r = collect(out)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    gates = manifest["verification"]["gates"]
    for score in ("verify_p", "cos", "margin", "len_log_ratio", "copy_sim", "script_ok", "num_agree"):
        per = r["scores"][score]["per_language"]
        assert set(per) == {"de", "ja"}, score
        # every verified target row lands in exactly one bin, kept or rejected
        kept_de = pl.read_parquet(Path(out) / "shards").filter(pl.col("lang") == "de")
        assert sum(per["de"]["kept"]) == kept_de[score].drop_nulls().len()
    assert r["scores"]["verify_p"]["per_language"]["de"]["threshold"] == pytest.approx(
        (gates.get("de") or gates["*"])["threshold"]
    )
    assert r["scores"]["margin"]["per_language"]["ja"]["threshold"] == pytest.approx(
        ((gates.get("ja") or gates["*"]).get("rules") or {}).get("margin_min", 0.95)
    )
    assert r["verification"]["embedder"] == "e5-native"
    assert "verify_p.median.de" in r["metrics"]


def _domain_corpus(path: Path) -> Path:
    """Short strings and a sentence-length source in en/de/ja:

    * short: 3 concepts kept ("Save", "Open the file", "Cancel"), one copy of "Save" under another id
      (a duplicate: dropped in de and ja); "Cancel" has no ja (``missing_target``: not counted);
    * sentence: 1 concept kept, one copy of it under another id (dropped in de and ja);
    * no paragraph.
    """
    sentence = {
        "en": "All human beings are born free and equal in dignity and rights.",
        "de": "Alle Menschen sind frei und gleich an Würde und Rechten geboren.",
        "ja": "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等である。",
    }
    records = [
        {"concept_id": "save", "en": "Save", "de": "Speichern", "ja": "保存"},
        {"concept_id": "open", "en": "Open the file", "de": "Datei öffnen", "ja": "ファイルを開く"},
        {"concept_id": "save.copy", "en": "Save", "de": "Speichern", "ja": "保存"},
        {"concept_id": "cancel", "en": "Cancel", "de": "Abbrechen"},
        {"concept_id": "udhr", **sentence},
        {"concept_id": "udhr.copy", **sentence},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _section(html: str, title: str) -> str:
    start = html.index(f">{title}</h2>")
    end = html.find("<h2", start)
    return html[start : end if end >= 0 else len(html)]


def test_kept_by_domain_and_language(tmp_path: Path, run_build) -> None:
    import re

    out = Path(run_build(_domain_corpus(tmp_path / "domains.jsonl"), tmp_path / "out", src="en", tgt=["de", "ja"]).output)
    counters = json.loads((out / "stats.json").read_text())["steps"]["select"]["counters"]
    assert {k: v for k, v in counters.items() if k.startswith("domain.")} == {
        "domain.de.short.kept": 3,
        "domain.de.short.dropped": 1,
        "domain.ja.short.kept": 2,
        "domain.ja.short.dropped": 1,  # the duplicate only: cancel's ja row never existed
        "domain.de.sentence.kept": 1,
        "domain.de.sentence.dropped": 1,
        "domain.ja.sentence.kept": 1,
        "domain.ja.sentence.dropped": 1,
    }
    assert counters["missing_target.ja"] == 1

    r = collect(out)
    assert r["kept_by_domain"] == {
        "de": {
            "short": {"kept": 3, "total": 4, "share": 0.75},
            "sentence": {"kept": 1, "total": 2, "share": 0.5},
            "paragraph": {"kept": 0, "total": 0, "share": None},
        },
        "ja": {
            "short": {"kept": 2, "total": 3, "share": pytest.approx(2 / 3, abs=1e-6)},
            "sentence": {"kept": 1, "total": 2, "share": 0.5},
            "paragraph": {"kept": 0, "total": 0, "share": None},
        },
    }
    # the kept rows of the domains are the kept rows of the language
    for lang in ("de", "ja"):
        assert sum(d["kept"] for d in r["kept_by_domain"][lang].values()) == r["per_language"][lang]["kept_rows"]

    _, json_path, html_path = write_report(out)
    assert json.loads(json_path.read_text())["kept_by_domain"]["ja"]["short"]["total"] == 3
    table = _section(html_path.read_text(encoding="utf-8"), "Kept per domain and language")
    assert re.findall(r"<th class='n'>(\w+)</th>", table) == ["de", "ja"]
    cells = {
        domain: re.findall(r"<td class='n[^']*'>([^<]*)</td>", row)
        for domain, row in re.findall(r"<tr><td><b>(\w+)</b>(.*?)</tr>", table)
    }
    assert cells == {
        "short": ["75.0% (3/4)", "66.7% (2/3)"],
        "sentence": ["50.0% (1/2)", "50.0% (1/2)"],
        "paragraph": ["-", "-"],
    }

    text, _ = write_card(out, cards_dir=None)
    assert "| domain | `de` | `ja` |" in text
    assert "| short (source of at most 6 words) | 75.0% (3/4) | 66.7% (2/3) |" in text
    assert "| paragraph (source of more than 25 words) | - | - |" in text


def test_kept_by_domain_of_a_build_without_domain_counters(known_build: Path) -> None:
    """Statistics written before the select step counted domains: the report says so instead of a table of zeros."""
    assert collect(known_build)["kept_by_domain"]  # the build counted them
    stats_path = known_build / "stats.json"
    stats = json.loads(stats_path.read_text())
    select = stats["steps"]["select"]["counters"]
    stats["steps"]["select"]["counters"] = {k: v for k, v in select.items() if not k.startswith("domain.")}
    stats_path.write_text(json.dumps(stats))
    r = collect(known_build)
    assert r["kept_by_domain"] == {}
    _, _, html_path = write_report(known_build)
    assert "No per-domain counts" in _section(html_path.read_text(encoding="utf-8"), "Kept per domain and language")
    text, _ = write_card(known_build, cards_dir=None, report=r)
    assert "length domain" not in text


def test_report_command_writes_files_and_gates_on_metrics(known_build: Path) -> None:
    ok = runner.invoke(
        app, ["report", str(known_build), "--fail-under", "kept_ratio=0.7", "--fail-over", "drop_rate.duplicate=0.2"]
    )
    assert ok.exit_code == 0, ok.output
    assert (known_build / REPORT_JSON).exists() and (known_build / REPORT_HTML).exists()
    saved = json.loads((known_build / REPORT_JSON).read_text())
    assert saved["metrics"]["kept_ratio"] == pytest.approx(14 / 19, abs=1e-6)

    low = runner.invoke(app, ["report", str(known_build), "--fail-under", "kept_ratio=0.8"])
    assert low.exit_code == 1
    assert "kept_ratio" in low.output and "0.736842" in low.output
    high = runner.invoke(app, ["report", str(known_build), "--fail-over", "drop_rate.duplicate=0.1"])
    assert high.exit_code == 1

    unknown = runner.invoke(app, ["report", str(known_build), "--fail-under", "kept_ratoi=0.8"])
    assert unknown.exit_code == 2 and "did you mean kept_ratio" in " ".join(unknown.output.split())
    bad = runner.invoke(app, ["report", str(known_build), "--fail-under", "kept_ratio"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["report", str(known_build / "nope")])
    assert missing.exit_code == 2


def test_checks_parse_and_evaluate() -> None:
    checks = parse(["a=0.5", "b = 2"], "under") + parse(["c=1"], "over")
    passed, failed = evaluate(checks, {"a": 0.5, "b": 1.0, "c": 1.5})
    assert passed == ["a = 0.5 (required >= 0.5)"]
    assert failed == ["b = 1 (required >= 2)", "c = 1.5 (required <= 1)"]
    with pytest.raises(CheckError, match="not a number"):
        parse(["a=x"], "under")
    with pytest.raises(CheckError, match="unknown metric"):
        evaluate(parse(["zz=1"], "under"), {"a": 1.0})


def test_compare_two_builds(tmp_path: Path, udhr_rows, run_build) -> None:
    corpus = _known_corpus(udhr_rows, tmp_path / "known.jsonl")
    a = run_build(corpus, tmp_path / "a", src="en", tgt=["de", "ja"]).output
    b = run_build(corpus, tmp_path / "b", src="en", tgt=["de", "ja"], select__on_missing_language="drop_concept").output
    cmp = compare(collect(a), collect(b))
    assert cmp["metrics"]["kept_rows"] == {"a": 14.0, "b": 12.0, "delta": -2.0}
    assert cmp["drop_reasons"]["missing_target"]["a"] == 1
    assert sum(d["b"] for d in cmp["drop_reasons"].values()) == sum(d["a"] for d in cmp["drop_reasons"].values()) + 2

    out = tmp_path / "cmp"
    res = runner.invoke(app, ["report", str(a), str(b), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "compare.json").read_text())["metrics"]["kept_rows"]["delta"] == -2.0
    html = (out / "compare.html").read_text()
    assert "B − A" in html and "missing_target" in html
    assert runner.invoke(app, ["report", str(a), str(b), "--fail-under", "kept_ratio=0.5"]).exit_code == 2


def _external_references(html: str) -> list[str]:
    """Anything in the page that a browser could fetch from outside it."""
    import re

    html = html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
    found = re.findall(r"(?:https?:|//[a-z0-9.-]+\.[a-z]{2,}/|url\(|@import|<script|<link|<iframe|<img|src=)", html, flags=re.I)
    found += [h for h in re.findall(r'href=["\']([^"\']*)', html) if not h.startswith("#")]
    return found


def test_html_is_self_contained(known_build: Path) -> None:
    _, _, html_path = write_report(known_build)
    html = html_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert _external_references(html) == []
    assert _external_references('<img src="http://example.org/a.png">')  # the check itself can fail
    for section in (
        "Why rows were dropped",
        "Completeness",
        "Language-ID confidence",
        "Step timings",
        "Examples of dropped rows",
    ):
        assert section in html
    assert "missing_target" in html and "known.jsonl:7" in html


def test_card_front_matter_is_valid_hub_metadata(known_build: Path, tmp_path: Path) -> None:
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    meta = tmp_path / "card.yaml"
    meta.write_text(
        "pretty_name: Known test corpus\n"
        "sources:\n  - {name: UDHR, match: 'known*', license: other, license_note: copyright-free}\n"
        "limitations: [Tiny.]\n",
        encoding="utf-8",
    )
    text, paths = write_card(known_build, meta_path=meta, name="known", cards_dir=tmp_path / "cards")
    assert paths == [known_build / "README.md", tmp_path / "cards" / "known.md"]
    assert text.startswith("---\n")
    fm = yaml.safe_load(text.split("---\n")[1])

    # against the Hub vocabularies that the datasets package ships
    import datasets

    res = Path(datasets.__file__).parent / "utils" / "resources"
    assert set(fm["size_categories"]) <= set(json.loads((res / "size_categories.json").read_text()))
    assert set(fm["multilinguality"]) <= set(json.loads((res / "multilingualities.json").read_text()))
    creators = json.loads((res / "creators.json").read_text())
    assert set(fm["language_creators"]) <= set(creators["language"])
    assert set(fm["annotations_creators"]) <= set(creators["annotations"])
    assert set(fm["language"]) <= set(json.loads((res / "languages.json").read_text()))
    assert fm["language"] == ["en", "de", "ja"] and fm["size_categories"] == ["n<1K"]
    assert fm["task_categories"] == ["translation"] and fm["license"] == "other" and fm["license_name"]
    assert fm["pretty_name"] == "Known test corpus"

    card = DatasetCard(text)  # huggingface_hub's own parser
    assert card.data.language == ["en", "de", "ja"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)  # raises on malformed data_files
    assert configs["default"]["data_files"] == [{"split": "train", "path": "shards/*.parquet"}]
    assert configs["rejected"]["data_files"] == [{"split": "train", "path": "rejected/*.parquet"}]
    for section in ("## Sources and licences", "## Provenance", "## How it was built", "## Statistics", "## Known limitations"):
        assert section in text
    assert "| UDHR | `known*` | copyright-free | 5 |" in text
    assert "- Tiny." in text


def test_shards_load_with_datasets_following_the_card(known_build: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    write_card(known_build, cards_dir=None)
    ds = load_dataset(str(known_build), cache_dir=str(tmp_path / "hf"))
    kept = pl.read_parquet(known_build / "shards")
    assert ds["train"].num_rows == kept.height == 14
    assert sorted(zip(ds["train"]["concept_id"], ds["train"]["lang"], strict=True)) == sorted(
        zip(kept["concept_id"], kept["lang"], strict=True)
    )
    rejected = load_dataset(str(known_build), "rejected", cache_dir=str(tmp_path / "hf"))
    assert rejected["train"].num_rows == 4 and set(rejected["train"]["drop_reason"]) == {"duplicate", "missing_target"}


def test_card_without_meta_says_licences_are_unknown(known_build: Path) -> None:
    text, _ = write_card(known_build, cards_dir=None)
    fm = yaml.safe_load(text.split("---\n")[1])
    assert fm["license"] == "unknown"
    assert "licences are unknown" in text


def test_size_category_buckets() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 2_500_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "1M<n<10M",
    ]


def test_bundled_sample_card_matches_generation(known_build: Path) -> None:
    """data_cards/bundled-sample.md is written by `corpusalign card` (its front matter is what the code makes)."""
    from corpusalign.cli import sample_dir
    from corpusalign.report.card import load_meta

    path = Path(__file__).resolve().parents[1] / "data_cards" / "bundled-sample.md"
    fm = yaml.safe_load(path.read_text(encoding="utf-8").split("---\n")[1])
    report = json.loads(json.dumps(collect(known_build)))
    report["languages"] = fm["language"]  # the sample's languages; everything else comes from the card file
    report["headline"]["kept_rows"] = 4000
    manifest = json.loads((known_build / "manifest.json").read_text())
    expected = front_matter(report, manifest, load_meta(sample_dir() / "card.yaml"), "bundled-sample")
    for key in ("pretty_name", "license", "license_details", "task_categories", "multilinguality", "tags"):
        assert fm[key] == expected[key], key
    assert fm["configs"][0] == expected["configs"][0]


def test_docs_describe_every_report_key(known_build: Path) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    r = collect(known_build)
    for key in r:
        assert f"`{key}`" in doc, f"docs/report.md does not describe report.json key {key!r}"
    for key in r["headline"]:
        assert f"`{key}`" in doc, f"docs/report.md does not describe headline.{key}"


def test_build_writes_report_and_prints_its_path(tmp_path: Path, udhr_rows) -> None:
    corpus = _known_corpus(udhr_rows, tmp_path / "known.jsonl")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("verify:\n  enabled: false\n", encoding="utf-8")
    res = runner.invoke(
        app, ["build", "--src", "en", "--tgt", "de,ja", "-i", str(corpus), "-o", str(tmp_path / "o"), "-p", str(pipeline)]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / REPORT_HTML).exists()
    assert f"report: {tmp_path / 'o' / REPORT_HTML}" in "".join(res.output.split("\n"))
    assert runner.invoke(app, ["validate", str(tmp_path / "o")]).exit_code == 0
    res = runner.invoke(
        app,
        [
            "build",
            "--src",
            "en",
            "--tgt",
            "de,ja",
            "-i",
            str(corpus),
            "-o",
            str(tmp_path / "o2"),
            "-p",
            str(pipeline),
            "--no-report",
        ],
    )
    assert res.exit_code == 0 and not (tmp_path / "o2" / REPORT_HTML).exists()


@pytest.mark.skipif(os.environ.get("CI") != "true" and not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_report_in_headless_chromium(known_build: Path, tmp_path: Path) -> None:
    from browser import screenshot

    _, _, html_path = write_report(known_build)
    png, requests = screenshot(html_path, tmp_path / "shot.png")
    assert requests == [], f"the page made requests: {requests}"
    from PIL import Image

    img = Image.open(png).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20) or []
    background = max(colours)[1]
    ink = sum(n for n, c in colours if c != background) / (img.width * img.height)
    assert len(colours) > 50 and ink > 0.05, f"blank-looking screenshot: {len(colours)} colours, {ink:.1%} non-background"

    # the harness sees a request when a page makes one
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<html><body><img src="http://example.invalid/pixel.png">x</body></html>', encoding="utf-8")
    _, requests = screenshot(leaky, tmp_path / "leaky.png")
    assert any("example.invalid" in r for r in requests)


def test_summary_counts_rows_not_in_the_input_apart_from_rejected_rows(known_build: Path) -> None:
    import io

    from rich.console import Console

    from corpusalign.store.manifest import read_manifest
    from corpusalign.summary import print_build_summary

    out = io.StringIO()
    print_build_summary(read_manifest(known_build), known_build, 1.0, Console(file=out, width=300))
    text = out.getvalue()
    # 19 input rows: 14 kept, 3 duplicates rejected, 1 ja slot the input never had, 1 quarantined record
    assert "= kept 14 + rejected 3 + not in the input 1 + quarantined 1" in text
    ja = next(line for line in text.splitlines() if line.startswith("│ ja"))
    assert "missing_target" not in ja and ja.rstrip("│ ").endswith("1")


def test_streamed_report_is_exact_and_independent_of_batching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report streams the files in record batches; its counts and quantiles equal those computed on all
    rows at once, and nothing (the length sample and the examples included) depends on the batch size."""
    import corpusalign.report.collect as collect_module

    root = write_synthetic_corpus(tmp_path / "syn", 3000, shard_rows=500, batch=400)
    r = collect(root)
    monkeypatch.setattr(collect_module, "BATCH_ROWS", 7)  # batches that cut through concepts
    assert json.dumps(collect(root), sort_keys=True) == json.dumps(r, sort_keys=True)  # as JSON: NaN scores compare equal

    kept = pl.read_parquet(root / "shards")
    rejected = pl.read_parquet(root / "rejected")
    # every kept concept's combination of languages, and the language-ID counts
    patterns = kept.group_by("concept_id").agg(pl.col("lang").sort().str.join(",")).group_by("lang").len()
    assert {",".join(sorted(p["languages"])): p["concepts"] for p in r["completeness"]["patterns"]} == dict(patterns.iter_rows())
    assert r["completeness"]["concepts_per_language"]["de"] == kept.filter(pl.col("lang") == "de").height
    de = kept.filter(pl.col("lang") == "de")
    assert r["language_id"]["de"]["identified"] == de["lid_lang"].drop_nulls().len()
    assert r["language_id"]["de"]["agree"] == de.filter(pl.col("lid_lang") == "de").height
    # quantiles: exactly numpy.quantile over all kept values (ties, negatives, NaN left out)
    for score in ("verify_p", "cos", "margin", "len_log_ratio", "script_ok", "num_agree", "copy_sim", "lid_expected"):
        for lang, per in r["scores"][score]["per_language"].items():
            values = kept.filter(pl.col("lang") == lang)[score].drop_nulls().drop_nans().cast(pl.Float64).to_numpy()
            want = np.quantile(values, [0.05, 0.5, 0.95])
            assert per["kept_quantiles"] == {
                "p05": round(float(want[0]), 4),
                "median": round(float(want[1]), 4),
                "p95": round(float(want[2]), 4),
            }, (score, lang)
            assert sum(per["kept"]) == len(values)
    # duplicate clusters span rejected files; their sizes are counted over all of them
    dups = rejected.filter((pl.col("drop_reason") == "duplicate") & (pl.col("lang") == "en"))
    sizes = dups.group_by("dup_of").len()
    assert r["duplicates"]["duplicate"]["clusters"] == sizes.height
    assert r["duplicates"]["duplicate"]["concepts_dropped"] == dups.height
    assert r["duplicates"]["duplicate"]["largest"] == sizes["len"].max() + 1
    # length pairs: every target row with text whose concept has a source text (kept or rejected)
    rows = pl.concat([kept.select("concept_id", "lang", "text"), rejected.select("concept_id", "lang", "text")])
    sources = rows.filter((pl.col("lang") == "en") & pl.col("text").is_not_null()).select("concept_id")
    ja = rows.filter((pl.col("lang") == "ja") & pl.col("text").is_not_null()).join(sources, on="concept_id")
    assert r["lengths"]["ja"]["pairs"] == ja.height
    assert len(r["lengths"]["ja"]["src_chars"]) == 1500 and not all(r["lengths"]["ja"]["kept"])


# VmHWM, the peak RSS of this process image: ru_maxrss would carry over the forked test process's peak
# through exec, and the test process holds the synthetic corpus it just wrote
_PEAK_RSS = """
import sys
from pathlib import Path
from corpusalign.report.collect import collect
report = collect(sys.argv[1])
assert report["headline"]["kept_rows"] > 0
status = Path("/proc/self/status").read_text()
print(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)")
def test_report_memory_does_not_grow_with_the_corpus(tmp_path: Path) -> None:
    """Peak RSS of ``collect`` in a fresh process: 4x the rows, at most 1.3x the memory (the report that
    held every kept row's scores took 1.9x here: 183 MiB at 50k concepts, 352 MiB at 200k; streamed,
    155 and 157 MiB)."""
    peaks = {}
    for concepts in (50_000, 200_000):
        root = write_synthetic_corpus(tmp_path / f"syn-{concepts}", concepts)
        done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(root)], capture_output=True, text=True, check=True)
        peaks[concepts] = int(done.stdout.split()[-1])  # KiB on Linux
    assert peaks[200_000] < 1.3 * peaks[50_000], peaks
