"""A disk cache of traced programs: a new process skips tracing and lowering, not only compiling.

JAX's persistent compilation cache (which the command line turns on) keeps compiled executables,
but its key is the lowered program, so every new process still traces and lowers each jitted
function before it can look the executable up: on a 30-row `jaxpref fit` that was about 1.2 s of
2.5 s. `cached_jit` is `jax.jit` plus a second cache beside JAX's: the first call of a signature
exports the traced program (`jax.export`, serialized StableHLO) to
``<compilation cache>/jaxpref-programs/<key>``; later processes load it and call it, and its
compiled executable comes from JAX's cache as before.

The key holds everything the traced program depends on: the function, its static arguments'
``repr``, the tree structure and abstract values (shape, dtype, weak type) of the other
arguments, the x64 flag, the backend, the JAX version and a digest of jaxpref's own source (an
edited package never reuses an old program). Without a compilation cache directory (JAX's default,
and every library user who did not set one), under a trace (the function called inside another
jit or vmap), or on arguments spread over several devices, `cached_jit` is plain `jax.jit`. A
program that cannot be exported or an unreadable entry also falls back to `jax.jit`: the cache
only ever saves time.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from jaxpref.io.atomic import atomic_paths

__all__ = ["cached_jit", "directory"]

#: Loaded programs of this process, by key (each a jitted call of the deserialized program).
_LOADED: dict[str, Callable[..., Any]] = {}


def directory() -> Path | None:
    """Where programs are kept: beside JAX's compilation cache, or None when that is not set."""
    base = jax.config.jax_compilation_cache_dir
    return Path(base) / "jaxpref-programs" if base else None


@functools.cache
def _source_digest() -> str:
    """A digest of jaxpref's Python source and the JAX version."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(jax.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _on_one_device(leaf: Any) -> bool:
    sharding = getattr(leaf, "sharding", None)
    return sharding is None or len(sharding.device_set) == 1


def _key(function: Callable[..., Any], static: dict[str, Any], in_tree: Any, leaves: list[Any]) -> str:
    avals = [jax.typeof(leaf) for leaf in leaves]
    parts = (
        f"{function.__module__}.{function.__qualname__}",
        repr(sorted(static.items())),
        str(in_tree),
        repr([(aval.shape, str(aval.dtype), aval.weak_type) for aval in avals]),
        str(jax.config.jax_enable_x64),
        jax.default_backend(),
        _source_digest(),
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _runner(exported: Any, out_tree: Any) -> Callable[..., Any]:
    """The exported program as a function of the flat leaves that returns the output tree."""
    call = jax.jit(exported.call)
    return lambda *leaves: jax.tree.unflatten(out_tree, call(*leaves))


def _load(path: Path) -> Callable[..., Any] | None:
    """The stored program at ``path`` (`_runner`), or None."""
    try:
        entry = pickle.loads(path.read_bytes())
        exported = jax.export.deserialize(bytearray(entry["exported"]))
        out_tree = entry["out_tree"]
    except Exception:  # a missing, partial or foreign entry: trace again
        return None
    return _runner(exported, out_tree)


def _export(function: Callable[..., Any], signature: inspect.Signature, static: dict[str, Any], in_tree: Any,
            leaves: list[Any], path: Path) -> Callable[..., Any] | None:
    """Traces ``function`` (of ``signature``) on the flat leaves, stores the program at ``path`` and
    returns it."""
    out_trees = []

    def flat(*flat_leaves):
        bound = signature.bind(**jax.tree.unflatten(in_tree, flat_leaves), **static)
        outputs, out_tree = jax.tree.flatten(function(*bound.args, **bound.kwargs))
        out_trees.append(out_tree)
        return outputs

    try:
        exported = jax.export.export(jax.jit(flat))(*leaves)
        payload = pickle.dumps({"exported": exported.serialize(), "out_tree": out_trees[-1]})
    except Exception:  # a program jax.export cannot serialize: stay with plain jit
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_paths([path]) as (temporary,):
            Path(temporary).write_bytes(payload)
    except OSError:
        pass  # a read-only cache still serves this process
    return _runner(exported, out_trees[-1])


def cached_jit(static_argnames: tuple[str, ...] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`jax.jit` with ``static_argnames``, whose traced programs are kept on disk (module docstring).

    Example:
        >>> @cached_jit(static_argnames=("power",))
        ... def scaled(x, power):
        ...     return x ** power
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        jitted = jax.jit(function, static_argnames=static_argnames)
        signature = inspect.signature(function)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            folder = directory()
            if folder is None:
                return jitted(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            static = {name: arguments.pop(name) for name in static_argnames}
            leaves, in_tree = jax.tree.flatten(arguments)
            if any(isinstance(leaf, jax.core.Tracer) or not _on_one_device(leaf) for leaf in leaves):
                return jitted(*args, **kwargs)
            key = _key(function, static, in_tree, leaves)
            program = (_LOADED.get(key) or _load(folder / key)
                       or _export(function, signature, static, in_tree, leaves, folder / key))
            if program is None:
                return jitted(*args, **kwargs)
            _LOADED[key] = program
            return program(*leaves)

        call.jitted = jitted
        return call

    return decorate
