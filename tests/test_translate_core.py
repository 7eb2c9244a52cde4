"""The machine-translation core: placeholder protection, the translation cache, failures and retries.

The backends have their own tests; here a deterministic stand-in translator (real German Tatoeba
translations looked up by the English text) drives the translate step and the runner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from corpusalign.config import BuildConfig, load_config
from corpusalign.translate.base import Failed, MachineTranslator, TranslatorUnavailable
from corpusalign.translate.cache import CachedTranslator, TranslationCache, cache_key
from corpusalign.translate.protect import protect, restore

# ---------------------------------------------------------------------------------------- protect


def test_protect_and_restore_round_trip() -> None:
    src = "Hi {name}, you have %d new <b>messages</b>: see https://x.org/inbox. Mail a@b.org, 100%% sure; run `ls -l`."
    p = protect(src)
    assert p.spans == ("{name}", "%d", "<b>", "</b>", "https://x.org/inbox", "a@b.org", "`ls -l`")
    assert "{name}" not in p.text and "https://" not in p.text and "%%" in p.text
    assert p.text.startswith("Hi {0}, you have {1} new {2}messages{3}: see {4}. Mail {5}")
    assert restore(p.text, p) == src


def test_restore_follows_moved_sentinels_and_leaves_dropped_ones_missing() -> None:
    p = protect("{count} files in {dir}")
    assert restore("In {1} gibt es {0} Dateien", p) == "In {dir} gibt es {count} Dateien"
    assert restore("In { 1 } gibt es Dateien", p) == "In {dir} gibt es Dateien"  # a dropped one stays dropped
    assert restore("Dateien {7}", p) == "Dateien {7}"  # an unknown number is left alone
    plain = protect("No placeholders here.")
    assert plain.spans == () and restore("Keine Platzhalter.", plain) == "Keine Platzhalter."


# ---------------------------------------------------------------------------------------- a stand-in MT


class LookupMT(MachineTranslator):
    """Translates by looking the (protected) English text up in a table; fails on chosen texts."""

    name = "lookup"

    def __init__(self, cfg: BuildConfig, table: dict[str, str], fail: set[str] | None = None) -> None:
        super().__init__(cfg)
        self.model = "lookup-table-v1"
        self.table = table
        self.fail = fail if fail is not None else set()
        self.calls: list[list[str]] = []

    def translate_batch(self, texts: Sequence[str], src: str, tgt: str) -> list[str | Failed]:
        self.calls.append(list(texts))
        return [
            Failed("server said 500 after 3 attempts") if t in self.fail else self.table.get(t, f"<{tgt}> {t}") for t in texts
        ]


def _cfg(tmp_path: Path, **kw: Any) -> BuildConfig:
    return load_config(src="en", tgt=["de"], translate__cache_path=str(tmp_path / "cache.sqlite"), **kw)


def test_machine_translator_protects_placeholders(tmp_path: Path) -> None:
    mt = LookupMT(_cfg(tmp_path), {"Delete {0} files from {1}?": "{0} Dateien aus {1} löschen?"})
    (out,) = mt.translate(["Delete %d files from {folder}?"], "en", "de")
    assert out == "%d Dateien aus {folder} löschen?"
    assert mt.calls == [["Delete {0} files from {1}?"]]  # the model never saw the placeholders
    assert mt.params["protect"] is True and json.loads(mt.params_json() or "{}")["num_beams"] == 4


# ---------------------------------------------------------------------------------------- cache


def test_cache_persists_and_keys_on_model_and_params(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = TranslationCache.open(path)
    k1 = cache_key("Hello", "en", "de", "seq2seq", "m1", '{"num_beams":4}')
    k2 = cache_key("Hello", "en", "de", "seq2seq", "m1", '{"num_beams":1}')
    k3 = cache_key("Hello", "en", "de", "seq2seq", "m2", '{"num_beams":4}')
    assert len({k1, k2, k3}) == 3
    cache.put_many({k1: "Hallo"})
    cache.close()
    again = TranslationCache.open(path)  # a later run
    assert again.get_many([k1, k2, k3]) == {k1: "Hallo"} and len(again) == 1


def test_cached_translator_calls_the_model_only_for_misses_and_never_caches_failures(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    inner = LookupMT(cfg, {"a": "A", "b": "B"}, fail={"c"})
    cached = CachedTranslator(inner, TranslationCache.open(tmp_path / "c.sqlite"))
    assert cached.translate(["a", "b", "c"], "en", "de") == ["A", "B", Failed("server said 500 after 3 attempts")]
    assert (cached.hits, cached.misses) == (0, 3)
    inner.fail.clear()
    assert cached.translate(["c", "a", "b"], "en", "de") == ["<de> c", "A", "B"]
    assert inner.calls[-1] == ["c"] and (cached.hits, cached.misses) == (2, 4)
    cached.translate(["a"], "en", "ja")
    assert inner.calls[-1] == ["a"] and cached.misses == 5  # another language is another key


# ---------------------------------------------------------------------------------------- builds


@pytest.fixture
def english_only(tmp_path: Path, tatoeba_rows: list[dict[str, Any]]) -> tuple[Path, dict[str, str]]:
    """40 English-only records and the real German translation of each (the stand-in's table)."""
    rows = [r for r in tatoeba_rows if len(r["en"]) >= 25][:40]
    path = tmp_path / "en.jsonl"
    path.write_text("".join(json.dumps({"concept_id": r["concept_id"], "en": r["en"]}) + "\n" for r in rows), encoding="utf-8")
    return path, {r["en"]: r["de"] for r in rows}


def _install(monkeypatch: pytest.MonkeyPatch, mt: LookupMT, cache_path: Path) -> None:
    """Make the runner build with ``mt`` behind a real cache."""
    import corpusalign.runner as runner

    monkeypatch.setattr(runner, "make_translator", lambda cfg: CachedTranslator(mt, TranslationCache.open(cache_path)))


def test_build_records_failures_and_the_same_command_retries_them(
    tmp_path: Path, english_only, run_build, read_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus, table = english_only
    texts = list(table)
    fail = set(texts[:5])
    cfg_kw = {"src": "en", "tgt": ["de"], "translate__translator": "seq2seq", "translate__cache_path": str(tmp_path / "c.sqlite")}
    mt = LookupMT(load_config(**cfg_kw), table, fail=fail)
    _install(monkeypatch, mt, tmp_path / "c.sqlite")
    out = tmp_path / "out"

    first = read_output(run_build(corpus, out, **cfg_kw))
    first.check_accounting(input_records=40)
    tr = first.manifest["translation"]
    assert tr == {"requested": 40, "filled": 35, "not_found": 0, "cache_hits": 0, "cache_misses": 40, "failed": 5}
    failed = first.rejected.filter(pl.col("drop_reason") == "translation_failed")
    assert failed.height == 5 and set(failed["lang"]) == {"de"}
    assert set(failed["drop_detail"]) == {"text: server said 500 after 3 attempts"}
    de = first.shards.filter(pl.col("lang") == "de")
    assert de.height == 35 and set(de["origin"]) == {"machine"} and set(de["translator"]) == {"lookup"}
    assert set(de["model"]) == {"lookup-table-v1"}
    assert json.loads(de["translator_params"][0]) == mt.params
    assert first.shards.filter(pl.col("lang") == "en")["translator_params"].null_count() == 35 + 0

    # the endpoint recovers; the very same command finishes the failed rows, paying only for those
    fail.clear()
    mt.calls.clear()
    second = read_output(run_build(corpus, out, **cfg_kw))
    second.check_accounting(input_records=40)
    assert second.manifest["translation"]["failed"] == 0 and second.rejected.height == 0
    assert second.manifest["translation"]["cache_hits"] == 35 and second.manifest["translation"]["cache_misses"] == 5
    assert sorted(t for call in mt.calls for t in call) == sorted(texts[:5])
    assert second.shards.filter(pl.col("lang") == "de").height == 40

    # now complete: the same command is up to date and translates nothing
    mt.calls.clear()
    third = run_build(corpus, out, **cfg_kw)
    assert third.up_to_date and mt.calls == []


def test_multi_field_concepts_translate_every_field(
    tmp_path: Path, run_build, read_output, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [
        ("How do I reset my password?", "Open Settings and choose Reset password."),
        ("Where can I download my invoice?", "Your invoices are under Account, then Billing."),
        ("Can I change the delivery address?", "Yes, until the parcel has been shipped."),
    ]
    de = {
        pairs[0][0]: "Wie setze ich mein Passwort zurück?",
        pairs[0][1]: "Öffnen Sie die Einstellungen und wählen Sie Passwort zurücksetzen.",
        pairs[1][0]: "Wo kann ich meine Rechnung herunterladen?",
        pairs[1][1]: "Ihre Rechnungen finden Sie unter Konto und dann Abrechnung.",
        pairs[2][0]: "Kann ich die Lieferadresse ändern?",
    }  # the last answer has no translation: it fails
    corpus = tmp_path / "sft.jsonl"
    corpus.write_text(
        "".join(json.dumps({"concept_id": f"q{i}", "en": {"prompt": p, "response": r}}) + "\n" for i, (p, r) in enumerate(pairs)),
        encoding="utf-8",
    )
    kw = {"src": "en", "tgt": ["de"], "fields": ["prompt", "response"], "translate__translator": "seq2seq"}
    mt = LookupMT(load_config(**kw), de, fail={pairs[2][1]})
    _install(monkeypatch, mt, tmp_path / "c.sqlite")
    out = read_output(run_build(corpus, tmp_path / "out", **kw))
    out.check_accounting(input_records=3)
    rows = out.shards.filter(pl.col("lang") == "de").sort("concept_id")
    assert rows["prompt"].to_list() == [de[pairs[0][0]], de[pairs[1][0]]]
    assert rows["response"].to_list() == [de[pairs[0][1]], de[pairs[1][1]]]
    (bad,) = out.rejected.filter(pl.col("lang") == "de").iter_rows(named=True)
    assert bad["concept_id"] == "q2" and bad["drop_reason"] == "translation_failed" and bad["drop_detail"].startswith("response:")


def test_unavailable_translator_fails_before_any_work(tmp_path: Path, english_only, monkeypatch: pytest.MonkeyPatch) -> None:
    import corpusalign.runner as runner
    from corpusalign.cli import app

    corpus, table = english_only

    class Offline(LookupMT):
        def check(self) -> None:
            raise TranslatorUnavailable(
                "model 'org/missing-model' is not on this machine; pre-download it or use --translator tm"
            )

    monkeypatch.setattr(runner, "make_translator", lambda cfg: Offline(cfg, table))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["build", "--src", "en", "--tgt", "de", "-i", str(corpus), "-o", str(out), "--translator", "seq2seq"]
    )
    assert res.exit_code == 2
    assert "org/missing-model" in " ".join(res.output.split())
    assert not out.exists()  # nothing was written


def test_every_pipeline_file_loads() -> None:
    pipelines = (Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml")
    files = sorted(f for f in pipelines if not f.name.startswith("train-"))  # train-*.yaml: training parameters
    assert any(f.name == "openai.yaml" for f in files)
    for f in files:
        cfg = load_config(f)
        if f.name == "openai.yaml":
            assert cfg.translate.translator == "openai" and cfg.translate.openai.api_key_env is None


@pytest.mark.parametrize("kind", ["seq2seq", "causal"])
def test_missing_translate_extra_names_the_install_command(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from corpusalign.translate import make_translator

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real(name, *a))
    translator = make_translator(load_config(src="en", tgt=["de"], translate__translator=kind, translate__cache=False))
    with pytest.raises(TranslatorUnavailable, match=r"pip install 'corpusalign\[translate\]'"):
        translator.check()


def test_a_translator_with_nothing_to_load_runs_as_a_plain_step(tmp_path: Path) -> None:
    """``tm`` without memory files loads nothing, so its step is fused with the plain steps (on Ray:
    no actor holding a CPU while it waits); with a memory, or a machine translator, it holds a model."""
    from corpusalign.runner import make_plan
    from corpusalign.steps.translate import TranslateStep
    from corpusalign.translate.tm import MemoryTranslator

    memory = tmp_path / "tm.jsonl"
    memory.write_text(json.dumps({"en": "Hello.", "de": "Hallo."}) + "\n")
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"concept_id": "c1", "en": "Hello."}) + "\n")
    cfg = load_config(None, src="en", tgt=("de",))
    assert not TranslateStep(MemoryTranslator((), cfg), cfg).holds_model
    assert TranslateStep(MemoryTranslator((str(memory),), cfg), cfg).holds_model
    assert TranslateStep(LookupMT(cfg, {}), cfg).holds_model
    step = next(s for s in make_plan(cfg, [data], tmp_path / "out").batch_steps if s.name == "translate")
    assert not step.holds_model
    with_memory = load_config(None, src="en", tgt=("de",), translate__memory=(str(memory),))
    step = next(s for s in make_plan(with_memory, [data], tmp_path / "out").batch_steps if s.name == "translate")
    assert step.holds_model
    assert step.translator.translate(["Hello."], "en", "de") == ["Hallo."]
