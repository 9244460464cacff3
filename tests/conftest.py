"""Test configuration: make tests/ importable for the NumPy reference modules, and keep the CLI's
persistent compilation cache off in the test processes.

The CLI turns JAX's persistent cache on in-process; two pytest-xdist workers sharing one cache
directory crashed JAX reading an entry (a segfault in ``compilation_cache.get_executable_and_time``).
Tests of the cache itself set ``JAXPREF_COMPILATION_CACHE`` for their own subprocesses.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("JAXPREF_COMPILATION_CACHE", "off")
