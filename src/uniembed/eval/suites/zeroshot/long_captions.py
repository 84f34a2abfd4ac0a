"""The `long-captions` suite: ShareGPT4V-1K and Urban1K image-text retrieval both directions, R@1
(layout: `data/readers/long_captions.py`)."""
from __future__ import annotations

from ....data.readers.long_captions import LONG_CAPTIONS, read_long_captions
from .common import register_releases

register_releases("long-captions", "long-caption image-text retrieval both directions (R@1)", LONG_CAPTIONS,
                  read_long_captions, "DIR/ShareGPT4V-1K/datas_for_validation.json + val_data/, "
                  "DIR/Urban1K/caption/<i>.txt + image/<i>.jpg")
