"""The `sugarcrepe` suite: SugarCrepe compositionality, accuracy per subset and per group
(layout: `data/readers/sugarcrepe.py`)."""
from __future__ import annotations

from ....data.readers.sugarcrepe import SUGARCREPE, read_sugarcrepe
from ...aggregate import group_means
from ..base import Suite, register
from .common import checker, load_paired, with_media

_read = with_media(read_sugarcrepe)

register(Suite("sugarcrepe", "SugarCrepe compositionality (accuracy)",
               load_paired(SUGARCREPE, _read, "sugarcrepe"),
               layout="DIR/data/<subset>.json and DIR/images/val2017/<filename>", summarize=group_means,
               check=checker(list(SUGARCREPE.values()), _read, lambda o: o.datasets)))
