"""The embedding engine a build ran is recorded and fingerprinted: "e5" runs natively or in torch."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from corpusalign.config import BuildConfig, config_from_dict
from corpusalign.embed import registry
from corpusalign.runner import _fingerprint
from corpusalign.summary import print_build_summary


def _without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.find_spec
    monkeypatch.setattr(registry, "find_spec", lambda name: None if name == "torch" else real(name))


def test_e5_resolves_to_the_installed_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    assert registry.resolve_spec("e5") == "e5-torch"
    assert registry.resolve_spec("e5-native") == "e5-native" and registry.resolve_spec("st:x") == "st:x"
    _without_torch(monkeypatch)
    assert registry.resolve_spec("e5") == "e5-native"


def test_the_engine_is_part_of_the_build_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    cfg = BuildConfig()
    with_torch = _fingerprint(cfg, [])
    _without_torch(monkeypatch)
    assert _fingerprint(cfg, []) != with_torch  # a resume never mixes the engines' scores
    off = config_from_dict({"verify": {"enabled": False}})
    unverified = _fingerprint(off, [])
    monkeypatch.undo()
    assert _fingerprint(off, []) == unverified  # no embedder, no engine in the fingerprint


def test_the_summary_names_the_engine() -> None:
    manifest = {
        "counts": {"concepts": 1, "complete_concepts": 1, "rows_per_lang": {"en": 1, "de": 1}},
        "accounting": {
            "input_records": 1,
            "concepts_read": 1,
            "languages": 2,
            "input_rows": 2,
            "kept_rows": 2,
            "rejected_rows": 0,
            "quarantined_rows": 0,
            "ok": True,
        },
        "languages": ["en", "de"],
        "source_language": "en",
        "shards": [{}],
        "verification": {"embedder": "e5-native", "model": "intfloat/multilingual-e5-small"},
    }
    out = io.StringIO()
    print_build_summary(manifest, "corpus", None, Console(file=out, width=200))
    assert "verified with e5-native (intfloat/multilingual-e5-small)" in out.getvalue()
    manifest["verification"] = None
    out = io.StringIO()
    print_build_summary(manifest, "corpus", None, Console(file=out, width=200))
    assert "verification off" in out.getvalue()
