"""File handling shared across pixseg: atomic writes (a crash never leaves a half-written file under
the final name), checks of output paths before any work starts, JSON without bare NaN, and image
opening with errors that name the file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
from pathlib import Path


def _temporary_beside(path: Path) -> Path:
    """Create an empty file `.<stem>.<8 hex><suffix>` beside `path`. Created with mode 0o666, so
    the umask decides who may read it, as for any file the user writes (mkstemp's 0o600 would make
    every report, checkpoint and dataset private)."""
    while True:
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files that writers of `path` killed mid-write (SIGKILL, power cut)
    left beside it. Call only where no other process is writing `path`."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.stem}.") + "[0-9a-f]{8}" + re.escape(path.suffix) + "$")
    removed = []
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            if pattern.match(candidate.name) and candidate.is_file():
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    return removed


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_text(value, indent: int | None = 2) -> str:
    """JSON with `null` where a score is undefined: bare NaN and Infinity are not JSON, and other
    readers (browsers, jq, pandas) reject the file."""
    return json.dumps(_finite_or_none(value), indent=indent, allow_nan=False)


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes: which checkpoint produced a result, whatever its name or copy."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_json(path: str | Path, produced_by: dict, compute) -> dict:
    """The result stored at `path` when it records the same `produced_by` (checkpoint digest,
    settings); otherwise compute() is stored there with it. A file that merely exists, left by
    another model or setting, is never taken for the result."""
    path = Path(path)
    key = json.loads(json_text(produced_by))
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            stored = None
        if isinstance(stored, dict) and stored.get("produced_by") == key:
            return stored
    result = {**compute(), "produced_by": key}
    write_text(path, json_text(result))
    return json.loads(json_text(result))


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, what: str) -> None:
    """`path` does not exist: its nearest existing ancestor must be a folder we may write in."""
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        raise ValueError(f"{what} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: the folder {ancestor} is not writable")


def check_output_folder(path: str | Path, what: str = "--out") -> Path:
    """Fail now, before any work, if files cannot be written into folder `path` (a file is in the
    way, or a folder on the way is read-only). Creates nothing."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{what} {path} is a file; expected a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path}: the folder is not writable")
    else:
        _check_creatable(path, what)
    return path


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Fail now, before any work, if file `path` cannot be written (it is a folder, or its folder
    cannot be written in). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder; expected a file name")
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: its folder {path.parent} is not writable")
    if not path.exists():
        _check_creatable(path, what)
    return path


def check_not_inputs(outputs, inputs) -> None:
    """Refuse to write any of `outputs` where it would replace one of `inputs` ((flag, path) pairs
    name each): an output never overwrites what the command reads."""
    def identity(path):
        path = Path(path)
        return os.path.normcase(os.path.realpath(path))

    read = {identity(path): (flag, path) for flag, path in inputs if path is not None}
    for flag, path in outputs:
        if path is not None and identity(path) in read:
            source_flag, source = read[identity(path)]
            raise ValueError(f"{flag} {path} would overwrite the input {source_flag} {source}; "
                             f"write the output elsewhere")


def open_image(path: str | Path, what: str = "image file"):
    """Open and decode an image with Pillow; a missing or undecodable file is an error naming it."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{what} {path} is not a readable image: {error}") from None
    return image
