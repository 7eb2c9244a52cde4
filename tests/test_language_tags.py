"""BCP-47 language tags as the languages of a build (corpusalign/langtags.py).

Tags ``language[-Script][-REGION]`` in canonical case everywhere a language is named (config,
``--tgt``, gate keys, input columns, TMX ``xml:lang``); unknown ones exit 2 naming close known
tags; each backend gets its own code (FLORES-200, M2M100, Marian tokens, lid.176 labels, scripts,
gates, prompt names); a target language that keeps no row is a warning in the summary and in
report.json. Offline, verification off: these tests are about languages, not the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from corpusalign import lid
from corpusalign.cli import app
from corpusalign.config import ConfigError, load_config
from corpusalign.langtags import (
    UnknownLanguageTag,
    base_language,
    close_tags,
    display_name,
    lid_label,
    likely_script,
    normalize_tag,
    tag_fallbacks,
    tag_value,
)
from corpusalign.read.formats import read_tmx
from corpusalign.steps.verify import gate_for
from corpusalign.translate.base import language_name
from corpusalign.translate.langcodes import UnknownLanguage, flores_code, iso3, m2m100_code, marian_target_token
from corpusalign.verify.scores import expected_scripts, script_agreement

runner = CliRunner()


def flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------ tags


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("pt-br", "pt-BR"),
        ("zh-hant", "zh-Hant"),
        ("SR-latn", "sr-Latn"),
        ("pt_BR", "pt-BR"),
        ("es-419", "es-419"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("DE", "de"),
        ("swh", "swh"),
        ("fil", "fil"),
    ],
)
def test_tags_are_normalised_to_canonical_case(given: str, canonical: str) -> None:
    assert normalize_tag(given) == canonical


@pytest.mark.parametrize(
    ("tag", "problem", "suggested"),
    [
        ("xx", "unknown language 'xx'", None),
        ("ger", "unknown language 'ger'", "de"),
        ("deu", "unknown language 'deu'", "de"),
        ("iw", "deprecated", "he"),
        ("pt-XX", "unknown region 'XX'", "pt-BR"),
        ("sr-Latx", "unknown script 'Latx'", "sr-Latn"),
        ("German", "not of the form", "de"),
        ("und", "special code", None),
        ("qaa", "unknown language", None),  # private use
        ("", "empty", None),
    ],
)
def test_unknown_tags_are_refused_with_close_known_tags(tag: str, problem: str, suggested: str | None) -> None:
    with pytest.raises(UnknownLanguageTag) as info:
        normalize_tag(tag)
    assert problem in str(info.value)
    if suggested is not None:
        assert suggested in info.value.suggestions
        assert f"did you mean {info.value.suggestions[0]!r}" in str(info.value)
    for known in info.value.suggestions:
        assert normalize_tag(known) == known, "every suggestion is itself a known tag"


def test_close_tags_put_the_alias_first() -> None:
    assert close_tags("ger")[0] == "de"
    assert close_tags("iw")[0] == "he"
    assert close_tags("pt-XX")[:2] == ["pt", "pt-BR"]
    assert close_tags("xx"), "a typo still gets a suggestion"


def test_config_normalises_languages_and_gate_keys() -> None:
    from corpusalign.verify.gate import DEFAULT_GATES

    gate = next(iter(DEFAULT_GATES.values())).to_dict()
    cfg = load_config(None, src="EN", tgt="pt-br,zh-hant,SR-latn", verify__gates={"PT": gate, "*": gate})
    assert cfg.src == "en" and cfg.tgt == ("pt-BR", "zh-Hant", "sr-Latn")
    assert cfg.to_dict()["tgt"] == ["pt-BR", "zh-Hant", "sr-Latn"]
    assert list(cfg.verify.gates) == ["pt", "*"]
    with pytest.raises(ConfigError, match=r"verify.gates: 'xx' is not a known language tag"):
        load_config(None, verify__gates={"xx": gate})
    with pytest.raises(ConfigError, match="cannot also be a target"):
        load_config(None, src="en", tgt="de,EN")
    with pytest.raises(ConfigError, match="repeated"):
        load_config(None, tgt="pt-BR,pt-br")


# ------------------------------------------------------------------------------------------------ mapping

#: tag -> (FLORES-200, M2M100, Marian token among MARIAN_TOKENS, lid.176 label, expected scripts, prompt name)
MAPPING = {
    "pt-BR": ("por_Latn", "pt", ">>por<<", "pt", ("Latin",), "Portuguese (Brazil)"),
    "zh-Hant": ("zho_Hant", "zh", ">>cmn_Hant<<", "zh", ("Han",), "Traditional Chinese"),
    "zh-Hans": ("zho_Hans", "zh", ">>cmn_Hans<<", "zh", ("Han",), "Simplified Chinese"),
    "zh-TW": ("zho_Hant", "zh", ">>cmn_Hant<<", "zh", ("Han",), "Chinese (Taiwan, Province of China)"),
    "sr-Latn": (None, "sr", ">>srp_Latn<<", "sr", ("Latin",), "Serbian (Latin)"),
    "sr": ("srp_Cyrl", "sr", ">>srp_Cyrl<<", "sr", ("Cyrillic",), "Serbian"),
    "sr-Cyrl": ("srp_Cyrl", "sr", ">>srp_Cyrl<<", "sr", ("Cyrillic",), "Serbian (Cyrillic)"),
    "de": ("deu_Latn", "de", ">>deu<<", "de", ("Latin",), "German"),
}
MARIAN_TOKENS = [">>deu<<", ">>por<<", ">>cmn_Hans<<", ">>cmn_Hant<<", ">>srp_Cyrl<<", ">>srp_Latn<<"]
M2M100_CODES = {"de", "en", "pt", "zh", "sr", "ja"}


@pytest.mark.parametrize("tag", list(MAPPING))
def test_each_backend_gets_its_code(tag: str) -> None:
    flores, m2m, marian, lid_lang, scripts, name = MAPPING[tag]
    if flores is None:
        with pytest.raises(UnknownLanguage):
            flores_code(tag)  # FLORES-200 has Serbian in Cyrillic only: refused, not written in Cyrillic
    else:
        assert flores_code(tag) == flores
        assert flores_code(tag, {flores, "eng_Latn", "zho_Hans", "zho_Hant"}) == flores
    assert m2m100_code(tag, M2M100_CODES) == m2m
    assert marian_target_token(tag, MARIAN_TOKENS) == marian
    assert lid_label(tag) == lid_lang
    assert expected_scripts(tag) == scripts
    assert language_name(tag) == name


def test_backend_codes_of_variants_follow_the_model() -> None:
    assert flores_code("sr-Latn", {"srp_Cyrl", "srp_Latn"}) == "srp_Latn"  # a model that has it
    with pytest.raises(UnknownLanguage):
        flores_code("zh-Hant", {"zho_Hans"})  # never the other script
    assert marian_target_token("pt-BR", [">>pt_br<<", ">>pt<<", ">>es<<"]) == ">>pt_br<<"
    assert marian_target_token("zh-Hant", [">>zho_Hant<<", ">>zho<<"]) == ">>zho_Hant<<"
    with pytest.raises(UnknownLanguage):
        marian_target_token("zh-Hant", [">>cmn_Hans<<"])
    assert iso3("pt-BR") == "por" and iso3("de") == "deu"


def test_language_id_and_scripts_use_the_base_language() -> None:
    assert [lid_label(t) for t in ("nb", "fil", "swh", "he", "yue")] == ["no", "tl", "sw", "he", "yue"]
    assert likely_script("sr") == "Cyrl" and likely_script("sr-ME") == "Latn" and likely_script("zh-TW") == "Hant"
    assert base_language("zh-Hant-TW") == "zh"
    texts = [
        "Todos os seres humanos nascem livres e iguais em dignidade e em direitos.",
        "人人生而自由，在尊嚴和權利上一律平等。",
    ]
    by_tag = lid.predict(texts, ["pt-BR", "zh-Hant"])
    by_base = lid.predict(texts, ["pt", "zh"])
    assert by_tag == by_base and by_tag[0] == ["pt", "zh"] and min(by_tag[2]) > 0.5
    latin, cyrillic = "Sva ljudska bića rađaju se slobodna", "Сва људска бића рађају се слободна"
    assert script_agreement([latin, cyrillic], "sr-Latn").tolist() == [1.0, 0.0]
    assert script_agreement([latin, cyrillic], "sr").tolist() == [0.0, 1.0]


def test_gates_fall_back_to_the_base_language_then_star() -> None:
    gates = {"pt": "pt gate", "zh-Hant": "zh-Hant gate", "*": "any gate"}
    assert gate_for(gates, "pt-BR") == "pt gate"  # type: ignore[arg-type]
    assert gate_for(gates, "zh-Hant-TW") == "zh-Hant gate"  # type: ignore[arg-type]
    assert gate_for(gates, "sr-Latn") == "any gate"  # type: ignore[arg-type]
    assert tag_fallbacks("zh-Hant-TW") == ("zh-Hant-TW", "zh-Hant", "zh-TW", "zh")
    assert display_name("pt-PT") == "Portuguese (Portugal)"


def test_columns_and_tmx_languages_match_tags_in_any_case(tmp_path: Path) -> None:
    assert tag_value({"pt_br": "a"}, "pt-BR") == "a" and tag_value({"text.PT-br": "b"}, "text.pt-BR") == "b"
    assert tag_value({"pt": "a"}, "pt-BR") is None, "a base language does not fill a regional one"
    path = tmp_path / "m.tmx"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en-US"/><body>\n'
        '<tu tuid="a"><tuv xml:lang="en-US"><seg>Good morning</seg></tuv><tuv xml:lang="pt_br"><seg>Bom dia</seg></tuv>'
        '<tuv xml:lang="pt-PT"><seg>Bom dia!</seg></tuv></tu>\n</body></tmx>\n',
        encoding="utf-8",
    )
    (item,) = list(read_tmx(path))
    assert item.record == {
        "concept_id": "a",
        "en-US": "Good morning",
        "pt-BR": "Bom dia",
        "pt-PT": "Bom dia!",
        "en": "Good morning",  # the only English variant also feeds an en build; two pt variants: no bare pt
    }


# ------------------------------------------------------------------------------------------------ CLI and builds


@pytest.mark.parametrize(
    ("tgt", "names"),
    [("de,xx", ["'xx' is not a known language tag", "did you mean"]), ("ger", ["did you mean 'de'"]), ("pt-XX", ["'pt-BR'"])],
)
def test_build_with_unknown_language_exits_2_naming_close_tags(tgt: str, names: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--tgt", tgt, "-o", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 2, result.output
    text = flat(result.output)
    assert "configuration error" in text
    for name in names:
        assert name in text
    assert not (tmp_path / "c").exists()


def test_dry_run_accepts_and_normalises_a_tag(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--dry-run", "--tgt", "pt-br,zh-hant", "-o", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "targets: pt-BR, zh-Hant" in text and '"pt-BR"' in text


EN = {
    "c1": "All human beings are born free and equal in dignity and rights.",
    "c2": "Everyone has the right to education, and it shall be free.",
    "c3": "My grandmother bakes bread every Sunday morning.",
    "c4": "Please close the window before you leave the house.",
}
PT = {
    "c1": "Todos os seres humanos nascem livres e iguais em dignidade e direitos.",
    "c2": "Toda pessoa tem direito à educação, e ela deve ser gratuita.",
    "c3": "Minha avó faz pão todo domingo de manhã, bem cedinho.",
    "c4": "Please close the window before you leave the house this evening.",  # English in the pt-BR column
}
ZH = {
    "c1": "人人生而自由，在尊嚴和權利上一律平等。",
    "c2": "人人都有受教育的權利，教育應當免費。",
    "c3": "我的祖母每個星期天早上都會烤麵包。",
    "c4": "Minha avó faz pão todo domingo de manhã, bem cedinho.",  # Portuguese in the Chinese column
}


def _write_input(path: Path) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for cid, en in EN.items():
            # columns named by tag in another case: pt-br and ZH-HANT are the build's pt-BR and zh-Hant
            f.write(json.dumps({"concept_id": cid, "en": en, "pt-br": PT[cid], "ZH-HANT": ZH[cid]}, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def tag_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A CLI build of a tiny input with pt-BR and zh-Hant columns and a French target the input lacks."""
    tmp = tmp_path_factory.mktemp("tags")
    data = _write_input(tmp / "in.jsonl")
    pipeline = tmp / "p.yaml"
    pipeline.write_text("verify:\n  enabled: false\n", encoding="utf-8")
    out = tmp / "corpus"
    args = ["build", "-i", str(data), "-o", str(out), "-p", str(pipeline), "--src", "en", "--tgt", "pt-br,zh-hant,fr"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, flat(result.output)


def test_build_keeps_rows_language_id_agrees_with_by_base_language(tag_build: tuple[Path, str]) -> None:
    out, _ = tag_build
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["languages"] == ["en", "pt-BR", "zh-Hant", "fr"]
    assert manifest["config"]["tgt"] == ["pt-BR", "zh-Hant", "fr"]
    kept = pl.read_parquet(sorted((out / "shards").glob("*.parquet")))
    rejected = pl.read_parquet(sorted((out / "rejected").glob("*.parquet")))
    pairs = set(kept.select("concept_id", "lang").iter_rows())
    assert {("c1", "pt-BR"), ("c2", "pt-BR"), ("c3", "pt-BR")} <= pairs, "language ID says pt: right for pt-BR"
    assert {("c1", "zh-Hant"), ("c2", "zh-Hant"), ("c3", "zh-Hant")} <= pairs, "language ID says zh: right for zh-Hant"
    assert set(kept.filter(pl.col("lang") == "pt-BR")["lid_lang"]) == {"pt"}
    wrong = {(c, lang): why for c, lang, why in rejected.select("concept_id", "lang", "drop_reason").iter_rows()}
    assert wrong[("c4", "pt-BR")] == "wrong_language" and wrong[("c4", "zh-Hant")] == "wrong_language"
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    for lang, base in (("pt-BR", "pt"), ("zh-Hant", "zh")):  # agreement is with the base language
        agree = kept.filter((pl.col("lang") == lang) & (pl.col("lid_lang") == base)).height
        assert report["language_id"][lang]["agree"] == agree >= 2


def test_a_target_that_keeps_nothing_is_a_warning(tag_build: tuple[Path, str]) -> None:
    out, text = tag_build
    line = "fr: 0 of 4 rows kept (top reason missing_target 4)"
    assert f"warning: {line}" in text
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["warnings"] == [line]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert line in html  # the HTML report says it too
