"""The openai translator against a real loopback HTTP server (:mod:`fake_openai`) that injects faults.

Unit tests drive :class:`OpenAITranslator` directly (retries, Retry-After, backoff, the concurrency
bound, the rate limit, timeouts, giving up, the API key); the builds at the end go through
``corpusalign.runner.build`` with the cache on: failures are recorded, nothing is lost, and the same
command run again after the faults stop asks the server only for the failed texts.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from corpusalign.config import load_config
from corpusalign.translate.base import Failed, TranslatorUnavailable
from corpusalign.translate.openai import OpenAITranslator, backoff_delay, parse_retry_after

try:
    from fake_openai import FakeOpenAI, Seen, fake_openai, fake_translation  # noqa: F401 - fake_openai is a fixture
except ImportError:  # tests/ imported as a package
    from tests.fake_openai import FakeOpenAI, Seen, fake_openai, fake_translation  # noqa: F401

SECRET = "sk-test-0123456789-SECRET"


def _openai(fake: FakeOpenAI, **kw: Any) -> dict[str, Any]:
    """The ``translate.openai`` mapping for the fake server, with test-sized timeouts and backoffs."""
    return {
        "base_url": fake.base_url,
        "api_key_env": None,
        "max_retries": 2,
        "backoff_s": 0.01,
        "max_backoff_s": 1.0,
        "timeout_s": 0.5,
        "concurrency": 4,
        **kw,
    }


def _translator(fake: FakeOpenAI, **kw: Any) -> OpenAITranslator:
    cfg = load_config(
        src="en", tgt=["de"], translate__translator="openai", translate__model="fake-mt", translate__openai=_openai(fake, **kw)
    )
    return OpenAITranslator(cfg)


def _max_overlap(seen: list[Seen]) -> int:
    """Most requests in progress at once, from the recorded [start, end] intervals."""
    events = sorted([(s.start, 1) for s in seen] + [(s.end, -1) for s in seen], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


# ---------------------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_answers_come_back_in_order_with_placeholders_restored(fake_openai: FakeOpenAI, api: str) -> None:
    mt = _translator(fake_openai, api=api)
    texts = ["Delete %d files from {folder}?", "Hello world", "Good morning"]
    out = mt.translate(texts, "en", "de")
    assert out == ["[de] dELETE %d FILES FROM {folder}?", "[de] hELLO WORLD", "[de] gOOD MORNING"]
    assert mt.translate(["Hello"], "en", "ja") == [fake_translation("Hello", "ja")]
    path = "/v1/chat/completions" if api == "chat" else "/v1/completions"
    assert {s.path for s in fake_openai.seen} == {path}
    assert "Delete {0} files from {1}?" in fake_openai.texts()  # the server never saw the placeholders
    payload = fake_openai.seen[0].payload
    assert payload["model"] == "fake-mt" and payload["temperature"] == 0.0 and payload["max_tokens"] == 256
    prompt = payload["messages"][0]["content"] if api == "chat" else payload["prompt"]
    assert "from English to German" in prompt and fake_openai.seen[0].authorization is None
    assert mt.counters() == {"requests": 4, "retries": 0, "translated": 4, "failures": 0}
    mt.close()


def test_answers_are_cleaned_of_chat_boilerplate(fake_openai: FakeOpenAI) -> None:
    fake_openai.script["Good night"] = ["chatty"]  # answers 'Translation: "[de] gOOD NIGHT"' and a newline
    mt = _translator(fake_openai)
    assert mt.translate(["Good night"], "en", "de") == ["[de] gOOD NIGHT"]  # causal.clean_answer, shared


# ---------------------------------------------------------------------------------------- retries


def test_transient_faults_are_retried_until_the_text_succeeds(fake_openai: FakeOpenAI) -> None:
    faults = {
        "five hundred": ["500", "502"],
        "dropped": ["drop"],
        "garbled": ["malformed"],
        "no choices": ["nochoices"],
        "rate limited": ["429"],
        "too slow": ["slow:3"],
    }
    for text, script in faults.items():
        fake_openai.script[text] = list(script)
    # a timeout well above a loaded machine's response time: only the scripted faults may be retried
    mt = _translator(fake_openai, timeout_s=1.0)
    texts = [*faults, "fine"]
    out = mt.translate(texts, "en", "de")
    assert out == [fake_translation(t, "de") for t in texts]
    for text, script in faults.items():
        assert [s.fault for s in fake_openai.requests_for(text)] == [*script, None]
    n_faults = sum(len(s) for s in faults.values())
    assert mt.counters() == {"requests": len(texts) + n_faults, "retries": n_faults, "translated": len(texts), "failures": 0}


def test_texts_that_keep_failing_become_failed_after_the_retry_budget(fake_openai: FakeOpenAI) -> None:
    fake_openai.always.update({"broken": "500", "gone": "drop", "stuck": "slow:3", "garbled": "malformed"})
    mt = _translator(fake_openai, timeout_s=0.3, max_retries=2)
    t0 = time.monotonic()
    broken, gone, stuck, garbled, fine = mt.translate(["broken", "gone", "stuck", "garbled", "fine"], "en", "de")
    elapsed = time.monotonic() - t0
    assert broken == Failed("HTTP 500 after 3 attempts")
    assert isinstance(gone, Failed) and gone.reason.startswith("connection error (RemoteProtocolError")
    assert gone.reason.endswith("after 3 attempts")
    assert stuck == Failed("timed out (timeout_s 0.3) after 3 attempts")
    assert garbled == Failed("malformed response (not JSON) after 3 attempts")
    assert fine == fake_translation("fine", "de")
    for text in ("broken", "gone", "stuck", "garbled"):
        assert len(fake_openai.requests_for(text)) == 3
    assert elapsed < 2.5  # three 0.3 s timeouts, not three 3 s waits
    assert mt.counters()["failures"] == 4


def test_other_client_errors_fail_at_once_with_the_status_and_an_excerpt(fake_openai: FakeOpenAI) -> None:
    fake_openai.always.update({"bad": "400", "missing": "404", "nope": "501", "blank": "empty", "long": "length"})
    texts = ["bad", "missing", "nope", "blank", "long"]
    bad, missing, nope, blank, long = _translator(fake_openai).translate(texts, "en", "de")
    assert isinstance(bad, Failed) and bad.reason.startswith("HTTP 400 (not retried): ") and "fault 400" in bad.reason
    assert isinstance(missing, Failed) and missing.reason.startswith("HTTP 404 (not retried): ")
    assert isinstance(nope, Failed) and nope.reason.startswith("HTTP 501 (not retried): ")  # will not change either
    assert blank == Failed("empty translation")
    assert long == Failed("translation cut off at max_new_tokens 256")
    assert all(len(fake_openai.requests_for(t)) == 1 for t in texts)


def test_retry_after_in_seconds_is_honoured(fake_openai: FakeOpenAI) -> None:
    fake_openai.script.update({"busy": ["429:1"], "overloaded": ["503:1"]})
    mt = _translator(fake_openai, backoff_s=0.01)
    assert mt.translate(["busy", "overloaded"], "en", "de") == [fake_translation(t, "de") for t in ("busy", "overloaded")]
    for text in ("busy", "overloaded"):
        first, second = fake_openai.requests_for(text)
        assert first.retry_after == "1"
        assert second.start - first.end >= 1.0 - 0.02  # not after the 0.01 s backoff


def test_retry_after_as_an_http_date_is_honoured(fake_openai: FakeOpenAI) -> None:
    fake_openai.script["busy"] = ["429:date:1"]
    mt = _translator(fake_openai, backoff_s=0.01, max_backoff_s=3.0)  # the date may be up to 2 s ahead
    assert mt.translate(["busy"], "en", "de") == [fake_translation("busy", "de")]
    first, second = fake_openai.requests_for("busy")
    assert first.retry_after is not None
    not_before = email.utils.parsedate_to_datetime(first.retry_after).timestamp()
    assert first.wall <= not_before - 0.9 and second.wall >= not_before - 0.05
    assert parse_retry_after(first.retry_after, now=not_before - 3) == pytest.approx(3.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("120") == 120.0 and parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_retry_after_beyond_max_backoff_gives_up_now(fake_openai: FakeOpenAI) -> None:
    fake_openai.always["busy"] = "429:120"
    t0 = time.monotonic()
    (out,) = _translator(fake_openai, max_backoff_s=1.0).translate(["busy"], "en", "de")
    assert out == Failed("HTTP 429 with Retry-After 120 s (more than max_backoff_s 1 s) after 1 attempt")
    assert time.monotonic() - t0 < 0.5 and len(fake_openai.seen) == 1


def test_backoff_grows_exponentially_with_jitter_and_is_capped(fake_openai: FakeOpenAI) -> None:
    rng = random.Random(7)
    for retry in range(1, 9):
        ceiling = min(0.8, 0.05 * 2 ** (retry - 1))
        for _ in range(50):
            assert 0.5 * ceiling <= backoff_delay(retry, 0.05, 0.8, rng) <= ceiling
    # as the server sees it: gaps of about 0.05, 0.1, 0.2, 0.4 s (each jittered down by up to half)
    fake_openai.script["flaky"] = ["500"] * 4
    mt = _translator(fake_openai, backoff_s=0.05, max_backoff_s=0.4, max_retries=4)
    assert mt.translate(["flaky"], "en", "de") == [fake_translation("flaky", "de")]
    seen = fake_openai.requests_for("flaky")
    gaps = [b.start - a.end for a, b in zip(seen, seen[1:])]
    assert len(gaps) == 4
    for i, gap in enumerate(gaps):
        ceiling = 0.05 * 2**i
        assert 0.5 * ceiling - 0.01 <= gap <= ceiling + 0.1, gaps
    assert gaps[3] > 2 * gaps[0]


# ---------------------------------------------------------------------------------------- flow control


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_concurrency_bound_is_never_exceeded(fake_openai: FakeOpenAI, concurrency: int) -> None:
    fake_openai.latency_s = 0.04
    texts = [f"sentence number {i}" for i in range(24)]
    for t in texts[::5]:
        fake_openai.script[t] = ["500"]  # retries count against the bound too
    mt = _translator(fake_openai, concurrency=concurrency)
    assert mt.translate(texts, "en", "de") == [fake_translation(t, "de") for t in texts]
    assert fake_openai.max_in_flight <= concurrency and _max_overlap(fake_openai.seen) <= concurrency
    assert fake_openai.max_in_flight >= min(concurrency, 2)  # and requests did overlap
    assert len(fake_openai.seen) == 24 + 5


def test_the_rate_limit_spaces_requests_across_workers(fake_openai: FakeOpenAI) -> None:
    texts = [f"line {i}" for i in range(11)]
    mt = _translator(fake_openai, concurrency=8, requests_per_second=20)
    assert mt.translate(texts, "en", "de") == [fake_translation(t, "de") for t in texts]
    starts = sorted(s.start for s in fake_openai.seen)
    assert starts[-1] - starts[0] >= 10 / 20 - 0.03
    assert min(b - a for a, b in zip(starts, starts[1:])) >= 0.02  # 0.05 s apart, give or take scheduling


# ---------------------------------------------------------------------------------------- the key


def test_the_api_key_is_sent_and_never_leaked(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_MT_KEY", SECRET)
    caplog.set_level(logging.DEBUG, logger="corpusalign")
    fake_openai.always["denied"] = "401"  # the fake echoes the Authorization header in its error body
    fake_openai.script["flaky"] = ["500", "drop"]
    mt = _translator(fake_openai, api_key_env="FAKE_MT_KEY")
    mt.check()
    denied, flaky = mt.translate(["denied", "flaky"], "en", "de")
    assert {s.authorization for s in fake_openai.seen} == {f"Bearer {SECRET}"}
    assert isinstance(denied, Failed) and denied.reason.startswith("HTTP 401 (not retried): ")
    assert "Bearer ***" in denied.reason and SECRET not in denied.reason
    assert flaky == fake_translation("flaky", "de")
    assert "retry 1 of 2" in caplog.text  # the retries were logged ...
    for shown in (caplog.text, mt.params_json() or "", mt.describe(), repr(mt.params)):
        assert SECRET not in shown  # ... without the key
    assert set(mt.params) == {"api", "temperature", "max_new_tokens", "prompt", "protect"}  # no base_url, no key


def test_check_fails_fast_when_the_key_variable_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_build, fake_openai: FakeOpenAI
) -> None:
    monkeypatch.delenv("FAKE_MT_KEY", raising=False)
    openai = _openai(fake_openai, api_key_env="FAKE_MT_KEY", base_url="http://user:pw@127.0.0.1:9/v1?token=t0k")
    cfg = load_config(src="en", tgt=["de"], translate__translator="openai", translate__model="fake-mt", translate__openai=openai)
    t0 = time.monotonic()
    with pytest.raises(TranslatorUnavailable) as exc:
        OpenAITranslator(cfg).check()
    assert time.monotonic() - t0 < 0.2
    message = str(exc.value)
    assert "FAKE_MT_KEY" in message and "http://127.0.0.1:9/v1" in message
    assert "pw" not in message and "t0k" not in message
    bad_url = load_config(
        src="en",
        tgt=["de"],
        translate__translator="openai",
        translate__model="m",
        translate__openai={"base_url": "localhost:8000"},
    )
    with pytest.raises(TranslatorUnavailable, match="not an http"):
        OpenAITranslator(bad_url).check()
    corpus = tmp_path / "en.jsonl"
    corpus.write_text(json.dumps({"concept_id": "c1", "en": "Hello there, how are you?"}) + "\n", encoding="utf-8")
    kw = {"src": "en", "tgt": ["de"], "translate__translator": "openai", "translate__model": "fake-mt"}
    with pytest.raises(TranslatorUnavailable, match="FAKE_MT_KEY"):
        run_build(corpus, tmp_path / "out", translate__cache_path=str(tmp_path / "c.sqlite"), translate__openai=openai, **kw)
    assert not (tmp_path / "out").exists() and fake_openai.seen == []


# ---------------------------------------------------------------------------------------- builds


def test_build_with_faults_loses_nothing_and_the_same_command_finishes_the_failures(
    tmp_path: Path, tatoeba_rows: list[dict[str, Any]], run_build, read_output, fake_openai: FakeOpenAI
) -> None:
    rows = [r for r in tatoeba_rows if len(r["en"]) >= 25 and r.get("de") and r.get("ja")][:30]
    corpus = tmp_path / "en.jsonl"
    corpus.write_text("".join(json.dumps({"concept_id": r["concept_id"], "en": r["en"]}) + "\n" for r in rows), encoding="utf-8")
    fake_openai.table.update({(r["en"], lang): r[lang] for r in rows for lang in ("de", "ja")})
    en = [r["en"] for r in rows]
    # permanent faults (both languages fail) ...
    broken = {en[0]: "500", en[1]: "drop", en[2]: "malformed", en[3]: "slow:4", en[4]: "400"}
    fake_openai.always.update(broken)
    # ... and transient ones: two faults per text, shared by de and ja, fit in 2 retries
    transient = {en[5]: ["500", "drop"], en[6]: ["429:0.2", "503"], en[7]: ["slow:4"], en[8]: ["nochoices", "502"]}
    for text, script in transient.items():
        fake_openai.script[text] = list(script)
    kw = {
        "src": "en",
        "tgt": ["de", "ja"],
        "translate__translator": "openai",
        "translate__model": "fake-mt",
        "translate__cache_path": str(tmp_path / "c.sqlite"),
        # timeout well above a loaded machine's response time (8 requests in flight on 2 cores), so
        # that only the scripted faults fail a request
        "translate__openai": _openai(fake_openai, timeout_s=1.5, concurrency=8),
    }
    out = tmp_path / "out"

    first = read_output(run_build(corpus, out, **kw))
    first.check_accounting(input_records=30)
    _each_row_once(first, [r["concept_id"] for r in rows])
    tr = first.manifest["translation"]
    assert tr["requested"] == 60 and tr["failed"] == 10 and tr["filled"] == 50 and tr["cache_misses"] == 60
    failed = first.rejected.filter(pl.col("drop_reason") == "translation_failed")
    by_id = {r["concept_id"]: r["en"] for r in rows}
    reasons = {(by_id[c], lang): d for c, lang, d in failed.select("concept_id", "lang", "drop_detail").iter_rows()}
    assert set(reasons) == {(t, lang) for t in broken for lang in ("de", "ja")}
    for lang in ("de", "ja"):
        assert reasons[(en[0], lang)] == "text: HTTP 500 after 3 attempts"
        assert reasons[(en[1], lang)].startswith("text: connection error (") and reasons[(en[1], lang)].endswith(
            "after 3 attempts"
        )
        assert reasons[(en[2], lang)] == "text: malformed response (not JSON) after 3 attempts"
        assert reasons[(en[3], lang)] == "text: timed out (timeout_s 1.5) after 3 attempts"
        assert reasons[(en[4], lang)].startswith("text: HTTP 400 (not retried): ")
    machine = first.shards.filter(pl.col("lang") != "en")
    assert machine.height == 50 and set(machine["translator"]) == {"openai"} and set(machine["model"]) == {"fake-mt"}
    assert all(
        text == fake_openai.table[(by_id[c], lang)] for c, lang, text in machine.select("concept_id", "lang", "text").iter_rows()
    )
    params = json.loads(machine["translator_params"][0])
    assert params["api"] == "chat" and "base_url" not in params and "127.0.0.1" not in machine["translator_params"][0]

    # the endpoint recovers; the very same command asks it only for what failed
    fake_openai.reset()
    second = read_output(run_build(corpus, out, **kw))
    second.check_accounting(input_records=30)
    _each_row_once(second, [r["concept_id"] for r in rows])
    assert sorted((s.text, s.lang) for s in fake_openai.seen) == sorted((t, lang) for t in broken for lang in ("de", "ja"))
    tr = second.manifest["translation"]
    assert tr["failed"] == 0 and tr["cache_hits"] == 50 and tr["cache_misses"] == 10
    assert second.rejected.filter(pl.col("drop_reason") == "translation_failed").height == 0
    assert second.shards.filter(pl.col("lang") != "en").height == 60


def _each_row_once(output: Any, concept_ids: list[str]) -> None:
    """Every (concept, language) is in the shards or the rejected rows, exactly once."""
    keys = pl.concat([output.shards.select("concept_id", "lang"), output.rejected.select("concept_id", "lang")])
    assert keys.height == keys.unique().height == len(concept_ids) * 3
    assert set(keys.iter_rows()) == {(c, lang) for c in concept_ids for lang in ("en", "de", "ja")}
