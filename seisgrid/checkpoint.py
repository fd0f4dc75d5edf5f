"""Model checkpoints: tensors (``torch.save``) at ``path`` and a JSON config at ``path + '.json'``.

One format for every model of both halves (the detectors and the heat-flow network), local path or URL.
Tensors are read back with ``torch.load(..., weights_only=True)``, so a checkpoint can hold tensors only.
"""

from __future__ import annotations

import json
import pathlib

from seisgrid import storage
from seisgrid.errors import SeisgridError


def write(path: str, tensors: dict, config: dict) -> dict:
    """Write ``tensors`` (moved to the CPU) to ``path`` and ``config`` to ``path + '.json'``.

    Returns
    -------
    dict
        ``{"weights": path, "config": path + ".json"}``.
    """
    import torch

    fs, fpath = storage.filesystem(str(path))
    fs.makedirs(str(pathlib.PurePosixPath(fpath).parent), exist_ok=True)
    with fs.open(fpath, "wb") as f:
        torch.save({k: v.detach().cpu() for k, v in tensors.items()}, f)
    with fs.open(fpath + ".json", "w") as f:
        json.dump(config, f, indent=2, default=str)
    return {"weights": str(path), "config": str(path) + ".json"}


def read(path: str, what: str = "checkpoint", how: str = "tensors + .json config") -> tuple[dict, dict]:
    """``(config, tensors)`` written by :func:`write`; tensors on the CPU.

    Parameters
    ----------
    path : str
        Checkpoint path or URL (the config is ``path + '.json'``).
    what, how : str
        What should be there and how it is made, for the error message when it is not
        (``"{path}: no {what} there ({how})"``).

    Returns
    -------
    tuple of dict
        The JSON config and the tensors by name.

    Raises
    ------
    SeisgridError
        No checkpoint at ``path``, or a file that holds more than tensors (a pickled object or function is
        refused by ``weights_only=True``, never run) or is not a checkpoint at all.
    """
    import pickle

    import torch

    fs, fpath = storage.filesystem(str(path))
    try:
        with fs.open(fpath + ".json", "r") as f:
            config = json.load(f)
        with fs.open(fpath, "rb") as f:
            # explicit, also where TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD would make torch's default unsafe
            tensors = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise SeisgridError(f"{path}: no {what} there ({how})") from exc
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = next((line for line in lines if "Unpickler error" in line), lines[0] if lines else repr(exc))
        raise SeisgridError(f"{path}: not a {what} of tensors only, refused unread ({reason}); expected {how}") \
            from exc
    if not isinstance(tensors, dict):
        raise SeisgridError(f"{path}: not a {what} ({how}): it holds a {type(tensors).__name__}, not tensors by name")
    return config, tensors
