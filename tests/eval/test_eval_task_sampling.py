"""A benchmark's per-task frame sampling reaches the encoder (MMEB-V2: 8 of at most 64 frames, floor
rounding), a model profile's pinned video policy wins over it, and tasks without video keep the model as is."""
from __future__ import annotations

import pytest

from uniembed import Embedder
from uniembed.data.examples import EvalTask
from uniembed.data.readers.mmeb_v2_video import MMEB_V2_VIDEO_SAMPLING
from uniembed.eval.profiles import profile_groups
from uniembed.inputs import Item

MMEB = dict(MMEB_V2_VIDEO_SAMPLING)


def video_task(name: str = "MSR-VTT", sampling: dict | None = MMEB) -> EvalTask:
    return EvalTask(name=name, queries=[Item(text="a cat")], candidates=[Item(video="clip/")],
                    qrels=[{0: 1.0}], video_sampling=sampling)


def image_task() -> EvalTask:
    return EvalTask(name="ImageNet-1K", queries=[Item(image="x.png")], candidates=[Item(text="cat")],
                    qrels=[{0: 1.0}], video_sampling=MMEB)


@pytest.fixture(scope="module")
def tiny():
    return Embedder.tiny()  # its own policy: 4 frames, nearest rounding


def test_mmeb_v2_sampling_is_applied_to_video_tasks_only(tiny):
    assert MMEB == {"num_frames": 8, "max_source_frames": 64, "rounding": "floor"}
    assert (tiny.config.frames.num_frames, tiny.config.frames.rounding) == (4, "nearest")
    groups = profile_groups(tiny, [image_task(), video_task(), video_task("MSVD")])
    by_task = {task.name: encoder for encoder, group in groups for task in group}
    assert by_task["ImageNet-1K"] is tiny  # no video: same model, same cache
    video_encoder = by_task["MSR-VTT"]
    assert by_task["MSVD"] is video_encoder  # one group for tasks with the same options
    assert video_encoder.config.frames.num_frames == 8
    assert video_encoder.config.frames.max_source_frames == 64
    assert video_encoder.config.frames.rounding == "floor"
    assert video_encoder.model_id != tiny.model_id  # cached apart: other frames, other embeddings


def test_task_without_sampling_keeps_the_model_policy(tiny):
    groups = profile_groups(tiny, [video_task(sampling=None)])
    assert groups[0][0] is tiny


def test_profile_pinned_video_policy_wins():
    model = Embedder.tiny(profile="rzenembed")  # the authors' 8 frames as images, all frames of a folder
    assert model.config.frames.max_source_frames is None and model.config.frames.num_frames == 8
    model = model.with_options(frames={"num_frames": 6})  # so the pinned value differs from the benchmark's
    encoder = profile_groups(model, [video_task()])[0][0]
    assert encoder.config.frames.num_frames == 6  # pinned by the profile: the benchmark's 8 do not override it
    assert encoder.config.frames.max_source_frames is None  # pinned too (the benchmark says 64)


def test_unknown_sampling_key_is_an_error(tiny):
    with pytest.raises(ValueError, match="unknown video_sampling"):
        profile_groups(tiny, [video_task(sampling={"frames": 8})])
