"""The `text-video` suite: MSR-VTT, MSVD and DiDeMo retrieval both directions, R@1/5/10 and median rank
(layout: `data/readers/text_video.py`)."""
from __future__ import annotations

from ....data.readers.text_video import TEXT_VIDEO, read_text_video
from ..base import Suite, register
from .common import base_names, checker, load_paired, with_media

_read = with_media(read_text_video)

register(Suite("text-video", "text-video retrieval both directions (R@1/5/10, median rank)",
               load_paired(TEXT_VIDEO, _read, "text-video"),
               layout="DIR/MSR-VTT/MSRVTT_JSFUSION_test.csv + videos/all/, DIR/MSVD/{test_list.txt,raw-captions.pkl} + "
                      "YouTubeClips/, DIR/DiDeMo/{test_list.txt,test_data.json} + DiDeMo_Videos/",
               check=checker(list(TEXT_VIDEO.values()), _read, lambda o: base_names(o.datasets))))
