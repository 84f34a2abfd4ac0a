"""`FramePolicy`: how a video becomes frames, the one vocabulary of `EmbeddingConfig.frames`, `Item.load_video`,
`EvalTask.video_sampling` and the server's cost estimate.

Which frames are kept decides the pixels a checkpoint sees, so the policy also reproduces the frame counting of
the qwen-vl-utils versions the authors' code ran (`counting`), not only uniembed's own.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError, reject_unknown_fields
from .resize import PreResize

FRAME_ROUNDINGS = ("nearest", "floor")
# "span": int(seconds from first to last frame x fps) + 1 (uniembed's own rule).
# "qwen-vl-utils-0.0.8" / "qwen-vl-utils-0.0.14": smart_nframes of that release (video files sampled by fps:
# total / rate x fps, at least 4 frames, at most `num_frames`, an even count; 0.0.8 rounds to it, 0.0.14 floors).
FRAME_COUNTINGS = ("span", "qwen-vl-utils-0.0.8", "qwen-vl-utils-0.0.14")
# qwen-vl-utils FPS_MIN_FRAMES and FRAME_FACTOR, the same in both releases
# (0.0.8 qwen_vl_utils/vision_process.py:32,34; 0.0.14 qwen_vl_utils/vision_process.py:32-33)
QWEN_VL_UTILS_MIN_FRAMES, QWEN_VL_UTILS_FRAME_FACTOR = 4, 2
# keys of uniembed.json files written before the policy had its own type -> its field (read, never written)
LEGACY_KEYS = {"video_frames": "num_frames", "video_fps": "fps", "video_max_source_frames": "max_source_frames",
               "frame_rounding": "rounding"}


@dataclass(frozen=True)
class FramePolicy:
    """Which frames of a video are embedded, and the time each frame stands for.

    num_frames: frames kept (with `fps`: the most kept); None keeps every frame (within the media limits).
    fps: sample a video file by rate instead of count (`counting` says how the count follows from it).
    max_source_frames: first restrict a frame folder or list to this many uniformly spaced frames
        (MMEB-V2 samples 8 from at most 64 saved).
    rounding: how uniformly spaced positions become indices: `nearest`, or `floor` (numpy
        `linspace(..., dtype=int)`, as VLM2Vec and RzenEmbed sample).
    counting: how `fps` becomes a frame count (`FRAME_COUNTINGS`).
    list_fps: the rate a frame folder or list is taken to be sampled at, for the seconds Qwen3-VL writes
        before each frame; None = `fps`, else 2.
    list_resize: resize each frame of a folder or list first (`PreResize`; qwen-vl-utils 0.0.14 fetches list
        frames as images at a 64-px factor); video-file frames are not.
    """

    num_frames: int | None = 8
    fps: float | None = None
    max_source_frames: int | None = None
    rounding: str = "nearest"
    counting: str = "span"
    list_fps: float | None = None
    list_resize: PreResize | None = None

    def __post_init__(self) -> None:
        if isinstance(self.list_resize, dict):
            reject_unknown_fields(PreResize, self.list_resize, "frames.list_resize field(s)")
            object.__setattr__(self, "list_resize", PreResize(**self.list_resize))
        if self.rounding not in FRAME_ROUNDINGS:
            raise ConfigError(f"frame rounding {self.rounding!r} is not one of {FRAME_ROUNDINGS}")
        if self.counting not in FRAME_COUNTINGS:
            raise ConfigError(f"frame counting {self.counting!r} is not one of {FRAME_COUNTINGS}")
        if self.num_frames is not None and self.num_frames < 1:
            raise ConfigError(f"frames.num_frames must be at least 1 (or null for all), got {self.num_frames}")
        for name in ("fps", "list_fps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"frames.{name} must be positive (or null), got {value}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "frames") -> "FramePolicy":
        """A policy from a mapping of its fields; an unknown key is a `ConfigError` naming the known ones."""
        return cls().updated(data, where)

    def updated(self, changes: Mapping[str, Any], where: str = "frames") -> "FramePolicy":
        """This policy with the fields in `changes` replaced (a partial policy, e.g. a profile's pins)."""
        unknown = sorted(set(changes) - set(self.fields()))
        if unknown:
            raise ConfigError(f"unknown frame-policy field(s) {unknown} in {where}; known: {list(self.fields())}")
        return dataclasses.replace(self, **dict(changes))

    @staticmethod
    def fields() -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(FramePolicy))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def frame_count(self, total: int, rate: float, max_frames: int) -> int:
        """How many of a video file's `total` frames (at `rate` frames per second) the policy keeps."""
        if self.fps and self.counting != "span":
            count = _smart_nframes(total, rate, self.fps, self.num_frames, self.counting)
        elif self.fps:
            span_s = max(0, total - 1) / rate
            count = max(1, int(span_s * self.fps) + 1)
            count = min(count, self.num_frames) if self.num_frames else count
        else:
            count = self.num_frames or total
        return max(1, min(count, max_frames, total))

    @property
    def budget_frames(self) -> int:
        """Frames to budget for before a video is opened (token estimates, serving cost): `num_frames`, or 8
        when the policy keeps every frame and the count is unknown until decoding."""
        return self.num_frames or 8

    @property
    def file_rounding(self) -> str:
        """The rounding of a video file's frame indices: qwen-vl-utils rounds `torch.linspace` to nearest
        (0.0.8 qwen_vl_utils/vision_process.py:196, 231; 0.0.14 qwen_vl_utils/vision_process.py:215, 317, 366),
        whatever `rounding` says for frame lists."""
        return "nearest" if self.counting != "span" else self.rounding

    def list_seconds(self, count: int) -> list[float]:
        """The seconds of `count` frames of a folder or list, which carry no timestamps of their own."""
        rate = self.list_fps or self.fps or 2.0
        return [index / rate for index in range(count)]


def _smart_nframes(total: int, rate: float, fps: float, most: int | None, release: str) -> int:
    """qwen-vl-utils' smart_nframes for `fps` sampling (0.0.8 qwen_vl_utils/vision_process.py:153-162;
    0.0.14 qwen_vl_utils/vision_process.py:170-181); `most` is its `max_frames`."""
    factor = QWEN_VL_UTILS_FRAME_FACTOR
    low = math.ceil(QWEN_VL_UTILS_MIN_FRAMES / factor) * factor
    high = math.floor((most if most else min(768, total)) / factor) * factor
    count = min(max(total / rate * fps, low), high)
    if release == "qwen-vl-utils-0.0.8":
        return round(count / factor) * factor
    return math.floor(min(count, total) / factor) * factor


def uniform_indices(total: int, count: int, rounding: str = "nearest") -> list[int]:
    """`count` frame indices spread uniformly (linspace, endpoints included) over `total` frames.

    `rounding="floor"` truncates the positions as numpy's `linspace(0, total - 1, count, dtype=int)` does
    (VLM2Vec's and RzenEmbed's sampling; one frame is then frame 0); `nearest` rounds them half to even, as
    qwen-vl-utils' `torch.linspace(...).round()` does.
    """
    # TIGER-AI-Lab/VLM2Vec@6e1e1d4 src/utils/vision_utils/vision_utils.py:256 (sample_frames)
    if rounding not in FRAME_ROUNDINGS:
        raise ValueError(f"rounding must be one of {FRAME_ROUNDINGS}, got {rounding!r}")
    if total <= 0:
        return []
    if count >= total:
        return list(range(total))
    if rounding == "floor":
        return [int(x) for x in np.linspace(0, total - 1, count)]
    if count == 1:
        return [total // 2]
    return [int(round(x)) for x in np.linspace(0, total - 1, count)]
