"""Checkpoints: atomic writes, ``weights_only=True`` reads, every RNG state.

Everything stored is a tensor or plain Python data (dicts, lists, tuples, numbers,
strings), so ``torch.load(..., weights_only=True)`` reads it without unpickling code.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raoutcome.errors import InputError
from raoutcome.io_utils import atomic_path


def save(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` through a temp file renamed into place (never a half-written file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU.

    A missing, truncated or foreign file (not a dict, or lacking a ``required`` key, or
    holding pickled code that ``weights_only`` refuses) raises
    :class:`~raoutcome.errors.InputError` naming the file, never a pickle traceback.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise InputError(f"{path}: checkpoint not found") from err
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot read checkpoint (truncated, corrupt, or not written by raoutcome: "
                         f"{first})") from err
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a raoutcome checkpoint (holds a {type(obj).__name__}, expected a dict)")
    missing = [k for k in required if k not in obj]
    if missing:
        raise InputError(f"{path}: not a raoutcome checkpoint (missing {missing})")
    return obj


def rng_state(loader_generator: torch.Generator | None = None) -> dict[str, Any]:
    """Python, NumPy, torch (CPU + CUDA) and DataLoader-generator RNG states."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], loader_generator: torch.Generator | None = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
