"""Imports every backbone module so each registers itself. Add a line here for a new backbone file."""
from . import qwen2_vl  # noqa: F401
