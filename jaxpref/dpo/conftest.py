"""Doctest collection: skip the trainer modules whose optional extra is not installed."""

import importlib.util

collect_ignore = [
    module
    for module, requirement in (("trl_trainer.py", "trl"), ("tunix_trainer.py", "tunix"))
    if importlib.util.find_spec(requirement) is None
]
