"""The `text-video` suite: MSR-VTT, MSVD and DiDeMo retrieval both directions, R@1/5/10 and median rank
(layout: `data/readers/text_video.py`)."""
from __future__ import annotations

from ....data.readers.text_video import TEXT_VIDEO, read_text_video
from .common import register_releases

register_releases("text-video", "text-video retrieval both directions (R@1/5/10, median rank)", TEXT_VIDEO,
                  read_text_video, "DIR/MSR-VTT/MSRVTT_JSFUSION_test.csv + videos/all/, "
                  "DIR/MSVD/{test_list.txt,raw-captions.pkl} + YouTubeClips/, "
                  "DIR/DiDeMo/{test_list.txt,test_data.json} + DiDeMo_Videos/")
