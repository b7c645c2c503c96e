# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""The FairGRPO state file: plain data that cannot run code, and the checks every loaded field passes.

A state is a tree of dicts, lists, strings, numbers, None and numeric numpy arrays (``state_dict()`` of
:class:`~verl_fair.algorithm.core.FairGRPO`). :func:`write_state` stores it as one ``.npz`` file: the
arrays as ``.npy`` members and the tree as JSON in a ``__meta__`` member, with the format name and
version. :func:`read_state` reads numeric ``.npy`` members only, so no member can hold Python objects,
rejects anything but that layout, and bounds what it reads: the zip directory's sizes and every ``.npy``
header are checked against the limits below before anything is unpacked. Writes are atomic: a temporary
file, fsync, rename, fsync of the folder, so a crash leaves the old file or the new one, never a mix.

``load_state_dict`` methods check what they read with :func:`expect` and :func:`expect_array`, which
raise :class:`StateError` naming the field (types, shapes, finite values, non-negative counts).
"""

from __future__ import annotations

import io
import json
import math
import os
import reprlib
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

STATE_FILE = "verl_fair_state.npz"  # in each checkpoint's global_step_N folder
FORMAT = "verl-fair-state"
VERSION = 2
META = "__meta__"
_ARRAY = "__array__"
_NUMERIC_KINDS = "biuf"
MAX_STATE_BYTES = 1 << 30  # all members unpacked, by the zip directory, checked before anything is unpacked
MAX_META_BYTES = 256 << 20  # the JSON tree (about 5 million prompt visits in the official variants' uid tables)
MAX_DIRECTORY_BYTES = 8 << 20  # the zip directory: some 100,000 members
MAX_DEPTH = 32  # nesting of the JSON tree
MAX_DIMS = 4  # dimensions of an array
_NPY_HEADER = 128  # bytes np.savez puts before each array's data


class StateError(ValueError):
    """A state file or state dict that cannot be loaded; the message names the field or the file."""


def write_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (see the module docstring); returns the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(state, arrays)
    meta = json.dumps({"format": FORMAT, "version": VERSION, "state": tree}, allow_nan=False).encode()
    try:  # a state the reader would refuse is not written: a resume from it would fail
        sizes = [len(meta), *(a.nbytes for a in arrays.values())]
        _check_sizes(len(meta) + _NPY_HEADER, sum(sizes) + _NPY_HEADER * len(sizes))
    except StateError as problem:
        raise StateError(f"{path} was not written: {problem}") from None
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
    """The state tree stored in ``path``, read within the limits above (every size is checked before
    anything is unpacked); :class:`StateError` naming the file, what is wrong and the fix otherwise."""
    path = Path(path)
    try:
        return _read(path)
    except StateError as problem:
        reason = str(problem)
    except (OSError, EOFError, ValueError, NotImplementedError, zipfile.BadZipFile, zlib.error) as error:
        reason = f"it is corrupt or truncated ({type(error).__name__}: {error})"
    raise StateError(f"{path} cannot be loaded: {reason}. Put back a good copy of the file")


def _read(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        end = zipfile._EndRecData(file)  # the record ZipFile reads its directory by; no public API bounds it
        if not end:
            raise StateError("not a verl-fair state file (not a zip archive: empty, truncated or another kind of file)")
        if end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES:
            raise StateError(
                f"its zip directory takes {end[zipfile._ECD_SIZE]} bytes, over the {MAX_DIRECTORY_BYTES} limit"
            )
        with zipfile.ZipFile(file) as archive:
            members = _members(archive)
            meta = _read_meta(archive, members.pop(META))
            arrays = {name: _read_array(archive, info) for name, info in members.items()}
    return _decode(meta["state"], arrays)


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The ``NAME.npy`` members by name, their unpacked sizes (from the zip directory) within the limits."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename.removesuffix(".npy")
        if not (info.filename.endswith(".npy") and name.isidentifier()):
            raise StateError(f"unexpected member {info.filename!r}; a state file holds NAME.npy arrays only")
        if name in members:
            raise StateError(f"member {info.filename} appears twice")
        if info.flag_bits & 0x1 or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise StateError(f"member {info.filename} is encrypted or packed with zip method {info.compress_type}")
        members[name] = info
    if META not in members:
        raise StateError(f"it has no {META}.npy member, so it is not a verl-fair state file")
    _check_sizes(members[META].file_size, sum(info.file_size for info in members.values()))
    return members


def _check_sizes(meta_bytes: int, total_bytes: int) -> None:
    """The limits a state must keep, checked when it is written and before it is unpacked."""
    if total_bytes > MAX_STATE_BYTES:
        raise StateError(f"its members unpack to {total_bytes} bytes, more than a state file's {MAX_STATE_BYTES}")
    if meta_bytes > MAX_META_BYTES:
        raise StateError(f"its {META} takes {meta_bytes} bytes, more than a state file's {MAX_META_BYTES}")


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member; its header must be numeric and match the size in the zip directory before
    its data is unpacked."""
    name = info.filename
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in _HEADERS:
            raise StateError(f"member {name} is .npy format {version}; a state file uses 1.0 or 2.0")
        shape, fortran, dtype = _HEADERS[version](stream)
        if dtype.kind not in _NUMERIC_KINDS:
            raise StateError(f"member {name} has dtype {dtype}; a state holds numeric arrays only")
        if len(shape) > MAX_DIMS or min(shape, default=0) < 0:
            raise StateError(f"member {name} has shape {shape}; a state holds arrays of at most {MAX_DIMS} dimensions")
        size, held = math.prod(shape) * dtype.itemsize, info.file_size - stream.tell()
        if size != held:
            raise StateError(f"member {name} claims shape {shape} ({size} bytes) but holds {held}")
        data = stream.read(size)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_meta(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any]:
    """The ``__meta__`` JSON: an object of this format and version holding the state tree, finite numbers only."""
    raw = _read_array(archive, info)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise StateError(f"its {META} is not a byte string (dtype {raw.dtype}, shape {raw.shape})")
    try:
        meta = json.loads(raw.tobytes(), object_pairs_hook=_json_object, parse_float=_finite, parse_constant=_finite)
    except RecursionError:
        raise StateError(f"its {META} is nested too deeply") from None
    except StateError:
        raise
    except ValueError as error:
        raise StateError(f"its {META} is not JSON ({error})") from error
    if not isinstance(meta, dict):
        raise StateError(f"its {META} is a {type(meta).__name__}, not a JSON object")
    if meta.get("format") != FORMAT:
        raise StateError(f"not a verl-fair state file (format {reprlib.repr(meta.get('format'))})")
    if meta.get("version") != VERSION:
        raise StateError(f"state format version {reprlib.repr(meta.get('version'))}; this verl-fair reads {VERSION}")
    if not isinstance(meta.get("state"), dict):
        raise StateError(f"its {META} holds no state tree")
    return meta


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(mapping := dict(pairs)) != len(pairs):
        twice = next(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        raise StateError(f"its {META} names the key {reprlib.repr(twice)} twice")
    return mapping


def _finite(text: str) -> float:
    if not math.isfinite(value := float(text)):
        raise StateError(f"its {META} holds the non-finite number {text}; a state holds finite numbers only")
    return value


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


def _decode(value: Any, arrays: dict[str, np.ndarray], depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise StateError(f"its state tree is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            name = value[_ARRAY]
            if not isinstance(name, str) or name not in arrays:
                raise StateError(f"the state refers to a missing array {reprlib.repr(name)}")
            return arrays[name]
        return {k: _decode(v, arrays, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays, depth + 1) for v in value]
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
