"""Test configuration: make tests/ importable for the NumPy reference modules, and keep the CLI's
persistent compilation cache off in the test processes.

The CLI turns JAX's persistent cache on in-process; two pytest-xdist workers sharing one cache
directory crashed JAX reading an entry (a segfault in ``compilation_cache.get_executable_and_time``).
Tests of the cache itself set ``JAXPREF_COMPILATION_CACHE`` for their own subprocesses.

Each module's compiled programs are released when the module ends. Every XLA CPU executable maps
about three memory regions; one test module alone reached 17,000 mappings, and a pytest-xdist
worker that kept the programs of some 450 tests reached the kernel's limit (``vm.max_map_count``,
65,530): LLVM then failed to allocate memory for the next compile and the worker died with a
segfault (tests/core/test_recovery.py, in CI and here, at the same test).
"""

import gc
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("JAXPREF_COMPILATION_CACHE", "off")


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drops JAX's caches of traced and compiled programs after each test module."""
    yield
    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
        gc.collect()
