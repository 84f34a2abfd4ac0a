"""The package version, in a module of its own: modules inside the package read it from here, never from
`uniembed/__init__.py`, so no module imports the package root (the one upward import)."""
from __future__ import annotations

__version__ = "0.1.0"
