"""Imports every backbone module of this package so each registers itself: a new backbone is one new file."""
import importlib
import pkgutil
from pathlib import Path

for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if _module.name not in ("base", "available") and not _module.name.startswith("_"):
        importlib.import_module(f"{__package__}.{_module.name}")
