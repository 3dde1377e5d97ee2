"""Compile ``attention.cpp`` once per machine and load it with ctypes.

Plain C++ with no torch headers: it builds in about a second with the system compiler and
needs neither ninja nor a matching libtorch. The shared library lives in a cache folder
(``$VIT_INSPECTOR_CACHE`` or ``~/.cache/vit-inspector``) under a name that hashes the source,
the flags and the machine, so an edit or another CPU never picks up a stale build. It is
written to a temporary name and renamed, so concurrent first uses (``--jobs 2``, DDP ranks, Ray
workers) never load a half-written file.

``VIT_INSPECTOR_FAST_ATTENTION=0`` turns the kernel off (SDPA everywhere).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("attention.cpp")
ABI_VERSION = 2
_lock = threading.Lock()
_state: dict[str, object] = {}  # "kernel": _Kernel | None, "status": str


class _Kernel:
    """The two entry points, taking (B, H, T, D) tensors or views whose last stride is 1; the
    thread count follows torch's."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i64, f32, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
        lib.vit_fastattn_forward.argtypes = [p] * 6 + [i64] * 4 + [p, f32, i32]
        lib.vit_fastattn_forward.restype = None
        lib.vit_fastattn_backward.argtypes = [p] * 10 + [i64] * 4 + [p, f32, i32]
        lib.vit_fastattn_backward.restype = None
        self._lib = lib

    @staticmethod
    def _ptr(t: torch.Tensor | None) -> int | None:
        return None if t is None else t.data_ptr()

    @staticmethod
    def _strides(*tensors: torch.Tensor) -> ctypes.Array:
        # (batch, head, token) strides of each (B, H, T, D) view, in elements.
        for t in tensors:
            assert t.stride(-1) == 1 and t.dtype == torch.float32, "kernel layout"
        return (ctypes.c_int64 * (3 * len(tensors)))(*(s for t in tensors for s in t.stride()[:3]))

    def forward(self, q, k, v, keep, out, probs, scale: float) -> None:
        B, H, T, D = q.shape
        self._lib.vit_fastattn_forward(
            *(self._ptr(t) for t in (q, k, v, keep, out, probs)),
            B, H, T, D, self._strides(q, k, v, out), scale, torch.get_num_threads(),
        )  # fmt: skip

    def backward(self, q, k, v, keep, out, probs, dout, dq, dk, dv, scale: float) -> None:
        B, H, T, D = q.shape
        self._lib.vit_fastattn_backward(
            *(self._ptr(t) for t in (q, k, v, keep, out, probs, dout, dq, dk, dv)),
            B, H, T, D, self._strides(q, k, v, out, dout, dq, dk, dv), scale,
            torch.get_num_threads(),
        )  # fmt: skip


def _flags() -> list[str]:
    flags = ["-O3", "-shared", "-fPIC", "-fopenmp", "-std=c++17"]
    # Reassociation lets the compiler vectorise the sums over keys (the order is still fixed,
    # so results stay deterministic); no -ffast-math, which would also assume no infinities.
    flags += ["-fno-math-errno", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math"]
    try:
        cpu = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpu = ""
    if platform.machine() in ("x86_64", "AMD64") and " avx2 " in cpu and " fma " in cpu:
        flags += ["-mavx2", "-mfma"]
    return flags


def _cache_dir() -> Path:
    root = os.environ.get("VIT_INSPECTOR_CACHE") or Path.home() / ".cache" / "vit-inspector"
    return Path(root) / "fastattn"


def _build(compiler: str) -> Path:
    """The cached shared library, compiled first when missing."""
    source = SOURCE.read_bytes()
    flags = _flags()
    key = hashlib.sha256(
        source + " ".join([compiler, *flags, platform.machine()]).encode()
    ).hexdigest()[:16]
    target = _cache_dir() / f"attention-{key}.so"
    if target.exists():
        return target
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"no C++ compiler ({compiler!r} not found)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", tmp],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load() -> tuple[_Kernel | None, str]:
    if os.environ.get("VIT_INSPECTOR_FAST_ATTENTION", "1") == "0":
        return None, "turned off by VIT_INSPECTOR_FAST_ATTENTION=0"
    compiler = os.environ.get("CXX") or "c++"
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
        if lib.vit_fastattn_abi_version() != ABI_VERSION:
            return None, "the compiled kernel has another ABI version"
        return _Kernel(lib), f"compiled kernel ({compiler})"
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["?"]
        return None, f"the kernel did not compile: {last[0]}"
    except FileNotFoundError as exc:
        return None, str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"the kernel could not be built or loaded: {exc}"


def load_kernel() -> _Kernel | None:
    """The loaded kernel, or None (after one warning naming the reason) when unavailable."""
    if "status" not in _state:
        with _lock:
            if "status" not in _state:
                kernel, status = _load()
                _state["kernel"], _state["status"] = kernel, status
                if kernel is None:
                    log.warning(
                        "fast CPU attention unavailable (%s); training uses PyTorch's "
                        "scaled_dot_product_attention, which is slower for small heads",
                        status,
                    )
    return _state["kernel"]  # type: ignore[return-value]


def kernel_status() -> str:
    """A line saying whether the kernel is in use, and why not."""
    load_kernel()
    return str(_state["status"])
