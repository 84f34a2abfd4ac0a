"""The `long-captions` suite: ShareGPT4V-1K and Urban1K image-text retrieval both directions, R@1
(layout: `data/readers/long_captions.py`)."""
from __future__ import annotations

from ....data.readers.long_captions import LONG_CAPTIONS, read_long_captions
from ..base import Suite, register
from .common import base_names, checker, load_paired, with_media

_read = with_media(read_long_captions)

register(Suite("long-captions", "long-caption image-text retrieval both directions (R@1)",
               load_paired(LONG_CAPTIONS, _read, "long-captions"),
               layout="DIR/ShareGPT4V-1K/datas_for_validation.json + val_data/, "
                      "DIR/Urban1K/caption/<i>.txt + image/<i>.jpg",
               check=checker(list(LONG_CAPTIONS.values()), _read, lambda o: base_names(o.datasets))))
