"""The FairGRPO state file: plain data that cannot run code, and the checks every loaded field passes.

A state is a tree of dicts, lists, strings, numbers, None and numeric numpy arrays (``state_dict()`` of
:class:`~verl_fair.algorithm.core.FairGRPO`). :func:`write_state` stores it as one ``.npz`` file: the
arrays as ``.npy`` members and the tree as JSON in a ``__meta__`` member, with the format name and
version. :func:`read_state` opens it with ``allow_pickle=False``, so no member can hold Python objects,
and rejects anything but that layout. Writes are atomic: a temporary file, fsync, rename, fsync of the
folder, so a crash leaves the old file or the new one, never a mix.

``load_state_dict`` methods check what they read with :func:`expect` and :func:`expect_array`, which
raise :class:`StateError` naming the field (types, shapes, finite values, non-negative counts).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "verl_fair_state.npz"  # in each checkpoint's global_step_N folder
PICKLE_STATE_FILE = "verl_fair_state.pkl"  # verl-fair 0.1
FORMAT = "verl-fair-state"
VERSION = 2
META = "__meta__"
_ARRAY = "__array__"
_NUMERIC_KINDS = "biuf"


class StateError(ValueError):
    """A state file or state dict that cannot be loaded; the message names the field or the file."""


def write_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (see the module docstring); returns the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "state": tree}, allow_nan=False).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **{META: np.frombuffer(meta, dtype=np.uint8)}, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state tree stored in ``path``; :class:`StateError` when it is not a readable state file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as members:
            names = set(members.files)
            if META not in names:
                raise StateError(f"{path} has no {META} member: not a verl-fair state file")
            meta = json.loads(members[META].tobytes().decode())
            arrays = {name: members[name] for name in names - {META}}
    except StateError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as error:
        raise StateError(f"{path} cannot be read as a verl-fair state file (corrupt or truncated?): {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateError(f"{path} is not a verl-fair state file (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise StateError(f"{path} is state format version {meta.get('version')!r}; this verl-fair reads {VERSION}")
    for name, array in arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise StateError(f"{path}: member {name} has dtype {array.dtype}; a state holds numeric arrays only")
    return _decode(meta.get("state"), arrays, path)


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"state arrays must be numeric, got dtype {value.dtype}")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"state dict keys must be strings, got {sorted(map(repr, value))[:3]}")
        return {k: _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    raise TypeError(f"a state cannot hold {type(value).__name__}")


def _decode(value: Any, arrays: dict[str, np.ndarray], path: Path) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            if value[_ARRAY] not in arrays:
                raise StateError(f"{path}: the state refers to a missing array {value[_ARRAY]!r}")
            return arrays[value[_ARRAY]]
        return {k: _decode(v, arrays, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays, path) for v in value]
    return value


def expect(state: Any, key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """``state[key]``, which must be of ``kind``; else :class:`StateError` naming ``path.key``."""
    if not isinstance(state, dict):
        raise StateError(f"{path} must be a mapping, not {type(state).__name__}")
    if key not in state:
        raise StateError(f"{path}.{key} is missing")
    value = state[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise StateError(f"{path}.{key} must be {_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise StateError(f"{path}.{key} must be {_names(kinds)}, not {type(value).__name__}")
    return value


def expect_count(state: Any, key: str, path: str) -> int:
    """A non-negative integer."""
    value = expect(state, key, int, path)
    if value < 0:
        raise StateError(f"{path}.{key} is {value}; it counts, so it must be >= 0")
    return value


def expect_array(
    state: Any,
    key: str,
    path: str,
    *,
    ndim: int | None = None,
    length: int | None = None,
    width: int | None = None,
    integer: bool = False,
    non_negative: bool = False,
    optional: bool = False,
) -> np.ndarray | None:
    """``state[key]`` as a finite numeric array of the given shape; integer and non-negative on request."""
    value = expect(state, key, (np.ndarray, type(None)) if optional else np.ndarray, path)
    if value is None:
        return None
    name = f"{path}.{key}"
    if ndim is not None and value.ndim != ndim:
        raise StateError(f"{name} has {value.ndim} dimensions, expected {ndim} (shape {value.shape})")
    if length is not None and value.shape[0] != length:
        raise StateError(f"{name} has {value.shape[0]} rows, expected {length}")
    if width is not None and (value.ndim < 2 or value.shape[1] != width):
        raise StateError(f"{name} has shape {value.shape}, expected {width} columns")
    if integer and value.dtype.kind not in "iu":
        raise StateError(f"{name} must hold integers, not {value.dtype}")
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        raise StateError(f"{name} holds NaN or infinite values")
    if non_negative and value.size and value.min() < 0:
        raise StateError(f"{name} holds negative values (smallest {value.min()}); counts and sums must be >= 0")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join("an array" if k is np.ndarray else "null" if k is type(None) else k.__name__ for k in kinds)
