"""The one device and dtype policy (corpusalign.device) and the callers that follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusalign import device
from corpusalign.device import DeviceUnavailable, resolve_device, resolve_dtype


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cuda_available", lambda: False)
    monkeypatch.setattr(device, "mps_available", lambda: False)


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    monkeypatch.setattr(device, "mps_available", lambda: False)


def test_explicit_devices_are_kept(no_gpu: None) -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("mps") == "mps"
    assert resolve_device("cuda:1", check=False) == "cuda:1"  # left to the first use of the device


def test_cuda_without_cuda_is_a_clear_error(no_gpu: None) -> None:
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceUnavailable, match=f"{name!r}.*no CUDA device"):
            resolve_device(name)


def test_auto_picks_cuda_then_mps_then_cpu(no_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device() == resolve_device("auto") == resolve_device(None) == "cpu"
    monkeypatch.setattr(device, "mps_available", lambda: True)
    assert resolve_device("auto") == "cpu"  # MPS only where the caller allows it
    assert resolve_device("auto", mps=True) == "mps"
    monkeypatch.setattr(device, "cuda_available", lambda: True)
    assert resolve_device("auto", mps=True) == resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


@pytest.mark.parametrize("bf16_gpu", [True, False])
def test_auto_dtype_on_cuda(monkeypatch: pytest.MonkeyPatch, bf16_gpu: bool) -> None:
    monkeypatch.setattr(device, "cuda_bf16_supported", lambda: bf16_gpu)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    for dev in ("cuda", "cuda:1"):
        assert resolve_dtype("auto", dev, "translate") == ("bfloat16" if bf16_gpu else "float16")
        assert resolve_dtype("auto", dev, "embed") == "float16"
        assert resolve_dtype("auto", dev, "embed_checked") == "float16"
        assert resolve_dtype("auto", dev, "train") == ("bfloat16" if bf16_gpu else "float32")


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_dtype_on_cpu(monkeypatch: pytest.MonkeyPatch, native_bf16: bool) -> None:
    def no_gpu_query() -> bool:
        raise AssertionError("a CPU dtype must not ask the GPU")

    monkeypatch.setattr(device, "cuda_bf16_supported", no_gpu_query)
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native_bf16)
    assert resolve_dtype("auto", "cpu", "train") == "float32"
    assert resolve_dtype("auto", "cpu", "translate") == "float32"
    assert resolve_dtype("auto", "cpu", "embed") is None  # keep the model's own dtype
    assert resolve_dtype("auto", "cpu", "embed_checked") == ("bfloat16" if native_bf16 else "float32")


def test_auto_dtype_on_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert resolve_dtype("auto", "mps", "translate") == "float16"
    assert resolve_dtype("auto", "mps", "embed") is None
    assert resolve_dtype("auto", "mps", "embed_checked") == "float32"  # the CPU rule is for the CPU only
    assert resolve_dtype("auto", "mps", "train") == "float32"


def test_explicit_dtypes_win_and_bad_names_fail() -> None:
    for purpose in ("translate", "embed", "embed_checked", "train"):
        assert resolve_dtype("float32", "cuda", purpose) == "float32"  # type: ignore[arg-type]
        assert resolve_dtype("bfloat16", "cpu", purpose) == "bfloat16"  # type: ignore[arg-type]
        assert resolve_dtype("fp16", "cpu", purpose) == "float16"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8", "cpu", "embed")
    with pytest.raises(ValueError, match="purpose"):
        resolve_dtype("auto", "cpu", "inference")  # type: ignore[arg-type]


def test_cpu_bf16_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert device.cpu_has_native_bf16(str(info)) is True
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert device.cpu_has_native_bf16(str(info)) is False
    info.write_text("flags\t\t: amx_bf16 amx_tile\n")
    assert device.cpu_has_native_bf16(str(info)) is True
    assert device.cpu_has_native_bf16(str(tmp_path / "missing")) is False


def test_training_precision_follows_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from corpusalign.training.config import TrainConfig
    from corpusalign.training.loop import _precision

    monkeypatch.setattr(device, "cuda_bf16_supported", lambda: True)
    monkeypatch.setattr("corpusalign.training.loop.cuda_available", lambda: True)
    assert _precision(TrainConfig(precision="auto", device="auto")) == "bf16"
    assert _precision(TrainConfig(precision="auto", device="cpu")) == "no"  # device=cpu: no autocast
    assert _precision(TrainConfig(precision="fp16", device="auto")) == "fp16"
    assert _precision(TrainConfig(precision="fp32", device="auto")) == "no"
    monkeypatch.setattr(device, "cuda_bf16_supported", lambda: False)
    assert _precision(TrainConfig(precision="auto", device="auto")) == "no"
    monkeypatch.setattr("corpusalign.training.loop.cuda_available", lambda: False)
    assert _precision(TrainConfig(precision="auto", device="cuda")) == "no"  # as before: no error, fp32
    assert _precision(TrainConfig(precision="bf16", device="cpu")) == "bf16"


def test_translation_device_and_dtype(no_gpu: None) -> None:
    torch = pytest.importorskip("torch")
    from corpusalign.translate._hf import resolve_device as translate_device
    from corpusalign.translate._hf import resolve_dtype as translate_dtype
    from corpusalign.translate.base import TranslatorUnavailable

    assert translate_device("auto") == torch.device("cpu")
    assert translate_dtype("auto", torch.device("cpu")) == torch.float32
    assert translate_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(TranslatorUnavailable, match="translate.device is 'cuda' but torch sees no CUDA device"):
        translate_device("cuda")


def test_torch_dtype_names() -> None:
    torch = pytest.importorskip("torch")
    assert device.torch_dtype("float32") is torch.float32
    assert device.torch_dtype("bf16") is torch.bfloat16
    assert device.torch_dtype("float16") is torch.float16


def test_sentence_transformers_embedder_dtype() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    from corpusalign.embed.sentence_transformers import SentenceTransformerEmbedder

    auto = SentenceTransformerEmbedder("unused", device="cpu")  # nothing is loaded before setup
    assert auto._torch_dtype("cpu") is None and auto._torch_dtype("cuda:0") is torch.float16
    assert SentenceTransformerEmbedder("unused", dtype="bfloat16")._torch_dtype("cpu") is torch.bfloat16


def test_core_import_needs_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, corpusalign.device, corpusalign.cache; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
