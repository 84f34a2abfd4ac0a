"""Zero-shot suites users report, one file each: CIRCO, FashionIQ, text-video, long captions, SugarCrepe.

Each data set is read from its official release exactly as it unpacks, under `--data ROOT`: the release folder
itself, `ROOT/<folder name>` (the names its `Release` lists, tried in order), or the folder a `--data-map` YAML
gives for the data set's name. `--image-root` / `--video-root` replace the media folder. The readers, with
each layout and the source of every layout fact, are in `data/readers/` (circo.py, fashioniq.py, text_video.py,
long_captions.py, sugarcrepe.py).

Instructions are U-MARVEL's (chaxjli/U-MARVEL@2f8afed; it wraps them in its own instruction tokens, which the
model profile's formatting replaces here); a side the reference gives none gets none.
"""
from ....data.readers.circo import CIRCO_INSTRUCTION
from ....data.readers.long_captions import I2T_INSTRUCTION, T2I_INSTRUCTION
from ....data.readers.release import TEXT_VIDEO_SAMPLING
from ....data.readers.sugarcrepe import SUGARCREPE_INSTRUCTION
from ....data.readers.text_video import T2V_INSTRUCTION
from . import circo, fashioniq, long_captions, sugarcrepe, text_video  # noqa: F401  (each registers its suite)

__all__ = ["CIRCO_INSTRUCTION", "I2T_INSTRUCTION", "SUGARCREPE_INSTRUCTION", "T2I_INSTRUCTION", "T2V_INSTRUCTION",
           "TEXT_VIDEO_SAMPLING"]
