"""The one cache root: $CORPUSALIGN_CACHE_DIR, the deprecated $CORPUSALIGN_CACHE, ~/.cache/corpusalign."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from corpusalign.cache import cache_root
from corpusalign.translate.cache import default_cache_path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("CORPUSALIGN_CACHE_DIR", raising=False)
    monkeypatch.delenv("CORPUSALIGN_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_default_is_under_home(clean_env: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache_root() == clean_env / "home" / ".cache" / "corpusalign"


def test_new_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUSALIGN_CACHE_DIR", str(clean_env / "new"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache_root() == clean_env / "new"


def test_old_variable_still_works_and_warns(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUSALIGN_CACHE", str(clean_env / "old"))
    with pytest.warns(FutureWarning, match=r"\$CORPUSALIGN_CACHE is deprecated.*CORPUSALIGN_CACHE_DIR"):
        assert cache_root() == clean_env / "old"


def test_new_variable_wins_without_a_warning(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUSALIGN_CACHE", str(clean_env / "old"))
    monkeypatch.setenv("CORPUSALIGN_CACHE_DIR", str(clean_env / "new"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache_root() == clean_env / "new"


def test_empty_variables_count_as_unset(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORPUSALIGN_CACHE_DIR", "")
    monkeypatch.setenv("CORPUSALIGN_CACHE", "")
    assert cache_root() == clean_env / "home" / ".cache" / "corpusalign"


def test_every_cache_uses_the_root(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from corpusalign.training.models import cache_dir

    monkeypatch.setenv("CORPUSALIGN_CACHE_DIR", str(clean_env / "new"))
    assert default_cache_path() == clean_env / "new" / "translations.sqlite"
    assert cache_dir() == clean_env / "new"
    monkeypatch.delenv("CORPUSALIGN_CACHE_DIR")
    monkeypatch.setenv("CORPUSALIGN_CACHE", str(clean_env / "old"))
    with pytest.warns(FutureWarning):
        assert default_cache_path() == clean_env / "old" / "translations.sqlite"
    with pytest.warns(FutureWarning):
        assert cache_dir() == clean_env / "old"
