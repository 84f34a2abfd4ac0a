"""The `sugarcrepe` suite: SugarCrepe compositionality, accuracy per subset and per group
(layout: `data/readers/sugarcrepe.py`)."""
from __future__ import annotations

from ....data.readers.sugarcrepe import SUGARCREPE, read_sugarcrepe
from ...aggregate import group_means
from .common import register_releases

register_releases("sugarcrepe", "SugarCrepe compositionality (accuracy)", SUGARCREPE, read_sugarcrepe,
                  "DIR/data/<subset>.json and DIR/images/val2017/<filename>", names=lambda o: o.datasets,
                  summarize=group_means)
