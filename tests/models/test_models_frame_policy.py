"""One frame-policy type: `EmbeddingConfig.frames`, `Item.load_video` and `EvalTask.video_sampling` speak
`FramePolicy`; a `uniembed.json` written before it (flat `video_frames`, `video_fps`, ... keys) still loads and is
written back in the new form; qwen-vl-utils' frame counting is reproduced where a profile asks for it."""
from __future__ import annotations

import json

import pytest

from uniembed.errors import ConfigError
from uniembed.frames import FramePolicy
from uniembed.models.config import EmbeddingConfig, SavedModelInfo


def test_a_saved_config_of_the_flat_keys_loads_and_is_written_in_the_new_form(tmp_path):
    old = EmbeddingConfig().to_dict()
    del old["frames"]
    old.update(video_frames=6, video_fps=1.5, video_max_source_frames=None, frame_rounding="floor")
    (tmp_path / "uniembed.json").write_text(json.dumps({"backbone": "qwen2_vl", "embedding": old}))
    info = SavedModelInfo.load(tmp_path)
    assert info.embedding.frames == FramePolicy(num_frames=6, fps=1.5, max_source_frames=None, rounding="floor")
    info.save(tmp_path)
    written = json.loads((tmp_path / "uniembed.json").read_text())["embedding"]
    assert not {"video_frames", "video_fps", "video_max_source_frames", "frame_rounding"} & set(written)
    assert written["frames"]["num_frames"] == 6 and written["frames"]["rounding"] == "floor"
    assert SavedModelInfo.load(tmp_path).embedding == info.embedding


def test_frames_mapping_changes_only_the_fields_it_names():
    config = EmbeddingConfig().replace(frames={"num_frames": 4})
    assert config.frames == FramePolicy(num_frames=4, max_source_frames=64)  # the default cap stays
    assert config.replace(frames=FramePolicy(fps=2.0)).frames == FramePolicy(fps=2.0)  # a policy replaces it all
    with pytest.raises(ConfigError, match="unknown frame-policy field"):
        config.replace(frames={"frame_rounding": "floor"})
    with pytest.raises(ConfigError, match="frame rounding"):
        FramePolicy(rounding="up")
    with pytest.raises(ConfigError, match="unknown embedding option"):
        config.replace(video_frames=4)  # the old flat key is read from saved files only


def test_span_counting_is_unchanged():
    policy = FramePolicy(num_frames=None, fps=1.0)
    assert policy.frame_count(total=24, rate=8.0, max_frames=512) == 3  # int(23 frames / 8 fps x 1 fps) + 1
    assert FramePolicy(num_frames=8).frame_count(24, 8.0, 512) == 8
    assert FramePolicy(num_frames=None).frame_count(24, 8.0, 5) == 5


def test_the_two_qwen_vl_utils_releases_count_differently():
    # 70 frames at 10 fps, 1 fps: 7 frames; 0.0.8 rounds to an even count (round(3.5) * 2 = 8), 0.0.14 floors (6)
    assert FramePolicy(num_frames=64, fps=1.0, counting="qwen-vl-utils-0.0.8").frame_count(70, 10.0, 512) == 8
    assert FramePolicy(num_frames=64, fps=1.0, counting="qwen-vl-utils-0.0.14").frame_count(70, 10.0, 512) == 6
    # both keep at least 4, at most `num_frames` (their max_frames), and round file indices to nearest
    assert FramePolicy(num_frames=32, fps=1.0, counting="qwen-vl-utils-0.0.8").frame_count(24, 8.0, 512) == 4
    assert FramePolicy(num_frames=32, fps=1.0, counting="qwen-vl-utils-0.0.14").frame_count(5000, 25.0, 512) == 32
    assert FramePolicy(rounding="floor", counting="qwen-vl-utils-0.0.14").file_rounding == "nearest"
    assert FramePolicy(rounding="floor").file_rounding == "floor"
