"""Manifest builders for public corpora in their published layouts: one module per corpus family.

Each module defines `CORPORA`, a dict of corpus name -> `Corpus` (common.py): what the corpus is, which `--split`
values it takes, and a function from (root folder, split) to manifest rows, each a sample in the manifest format of
`data_prep/manifest.py` with absolute audio paths, or a `Skip` naming the entry (file and line, or path) and why it
was left out. `mqa-make-manifest` (data_prep/make_manifest.py) writes the rows and the skips; nothing is dropped
silently. Modules are found by `corpus_registry()`, so a new corpus family is a new module and nothing else.
"""
from __future__ import annotations

import importlib
import pkgutil

from data_prep.corpora.common import Corpus


def corpus_registry() -> dict[str, Corpus]:
    """Every corpus of every module of this package, by name (a name defined twice is an error)."""
    registry: dict[str, Corpus] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        if module_info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for name, corpus in getattr(module, "CORPORA", {}).items():
            if name in registry:
                raise RuntimeError(f"corpus {name!r} is defined twice (second time in {module.__name__})")
            registry[name] = corpus
    return registry
