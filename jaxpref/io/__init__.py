"""Reading and writing users' files: one ingestion path for in-memory and streamed data, atomic outputs.

Light on purpose: importing it loads neither JAX nor pandas, so the command line can check
options and paths before the heavy imports.
"""

from jaxpref.errors import DataError

__all__ = ["DataError"]
