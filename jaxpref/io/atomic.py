"""Atomic, checked outputs: a failed or interrupted write leaves the old file or nothing, never part of one.

Every output is checked before any work (`check_output`: known format, an existing writable
directory, not a directory itself, not one of the inputs), written to a temporary file beside
the target, and renamed over it with `os.replace` only when the whole write succeeded
(`atomic_paths`). Several outputs of one command are renamed together, after all were written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jaxpref.errors import DataError
from jaxpref.io.tables import file_format, reading

__all__ = ["check_output", "atomic_paths", "write_table"]


def _same_or_inside(output: Path, source: Path) -> bool:
    """Whether ``output`` is ``source`` (the same file, even through links) or lies inside ``source``."""
    output, source = output.resolve(), source.resolve()
    if output == source or (source.is_dir() and source in output.parents):
        return True
    with contextlib.suppress(OSError):
        return output.exists() and os.path.samefile(output, source)
    return False


def check_output(path: Any, inputs: Sequence[Any] = (), flag: str = "output") -> str:
    """Checks an output path before any work is done.

    Args:
        path: the file to write.
        inputs: input files or directories the command reads; the output may be none of them.
        flag: how to name the output in messages (e.g. ``--out``).

    Returns:
        The table format, ``parquet``, ``csv`` or ``jsonl``.

    Raises:
        DataError: an unknown suffix, a missing or read-only directory, a directory at the path,
            or an output that is one of the inputs.
    """
    target = Path(path)
    if target.is_dir():
        raise DataError(
            f"{flag} {str(path)!r} is a directory: give a file name, e.g. {str(target / 'out.parquet')!r}"
        )
    kind = file_format(target, what=flag)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{flag} {str(path)!r}: directory {str(parent)!r} does not exist: create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(
            f"{flag} {str(path)!r}: directory {str(parent)!r} is not writable: choose another place"
        )
    if target.exists() and not os.access(target, os.W_OK):
        raise DataError(f"{flag} {str(path)!r} exists and is read-only: choose another name")
    for source in inputs:
        if (
            source is not None
            and isinstance(source, (str, os.PathLike))
            and _same_or_inside(target, Path(source))
        ):
            raise DataError(f"{flag} {str(path)!r} is the input {str(source)!r}: write to another file")
    return kind


def _umask() -> int:
    """The process's umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_paths(paths: Sequence[Any]) -> Iterator[list[str]]:
    """Temporary paths beside each target; on success all are renamed onto their targets, on failure removed.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_paths([target]) as (temporary,):
        ...     _ = pathlib.Path(temporary).write_text("done")
        >>> target.read_text()
        'done'
    """
    temporaries = []
    try:
        for path in paths:
            target = Path(path)
            handle, temporary = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".partial", dir=target.parent if str(target.parent) else "."
            )
            os.close(handle)
            # mkstemp makes the file private (0600); an output gets the permissions of any new file.
            os.chmod(temporary, 0o666 & ~_umask())
            temporaries.append(temporary)
        yield temporaries
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)
    finally:
        for temporary in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temporary)


def write_frame(frame: Any, path: str, kind: str) -> None:
    """Writes a pandas DataFrame as ``kind`` (parquet, csv or jsonl) to ``path`` (no checks)."""
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    elif kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)


def write_table(frame: Any, path: Any, inputs: Sequence[Any] = (), flag: str = "output") -> None:
    """Checks ``path`` (`check_output`), then writes a DataFrame there atomically by its suffix.

    Raises:
        DataError: a bad path, or a table the format cannot hold (the message names the file).
    """
    kind = check_output(path, inputs, flag)
    with reading(path, "write"), atomic_paths([path]) as (temporary,):
        write_frame(frame, temporary, kind)


def check_format_holds(schema: Any, kind: str, flag: str = "output") -> None:
    """Refuses, before any work, an output format that cannot hold the input's columns: CSV holds
    flat columns only, so a nested column (list, struct, array) is a `DataError` naming it.

    Args:
        schema: the input's polars schema (column name -> dtype).
        kind: the output's format (`check_output`).
        flag: how the output is named in messages.
    """
    if kind != "csv":
        return
    nested = [name for name, dtype in schema.items() if dtype.is_nested()]
    if nested:
        raise DataError(
            f"{flag} is CSV, which cannot hold the nested column(s) {', '.join(map(repr, nested))} of the input: "
            "write .parquet or .jsonl instead"
        )

