"""Issue 23's facts, one golden each, written BY HAND from the authors' code (sources in the profiles' YAML):
instruction punctuation, the instruction separator, fetch_image's pre-resize, qwen-vl-utils' frame counting,
frame-list seconds and per-frame minimum, and the evaluation-time prompt variants.

Grids are worked out by hand: Qwen2-VL 28-px factor, 14-px patches; Qwen3-VL 32-px factor, 16-px patches.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from conftest import write_mp4
from uniembed import Embedder, Item
from uniembed.frames import FramePolicy
from uniembed.media import load_video
from uniembed.models.profile import get_profile

IMG, VID, VS, VE = "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
USER, TURN_END = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
EOT = "<|endoftext|>"
SMALL = Image.new("RGB", (150, 100), (120, 30, 200))   # under Qwen2-VL's 256-token minimum
LARGE = Image.new("RGB", (2000, 1500), (10, 200, 60))  # over the 1280-token maximum
FRAMES = [Image.new("RGB", (64, 48), (60 * i, 90, 200)) for i in range(4)]


def prompt(model: Embedder, item: Item) -> tuple[str, dict]:
    batch = model.collate([model.decode(item)])
    ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    return model.backbone.tokenizer.decode(ids), batch


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 3 s clip: 24 frames at 8 fps."""
    path = tmp_path_factory.mktemp("video") / "three_seconds.mp4"
    write_mp4(path, [np.full((48, 64, 3), 10 * i, dtype=np.uint8) for i in range(24)], fps=8)
    return path


# ------------------------------------------------------------------------------------------------ pre-resize


@pytest.mark.parametrize("name", ["gme", "rzenembed", "unite"])
def test_fetch_image_resizes_first_then_the_processor(name):
    model = Embedder.tiny(profile=name)
    # 150x100 -> fetch_image 140x112 -> raised to 256 tokens: 504x420 -> (1, 30, 36); once: 560x392 -> (1, 28, 40)
    assert prompt(model, Item(image=SMALL))[1]["image_grid_thw"].tolist() == [[1, 30, 36]]
    # 2000x1500 -> fetch_image 1988x1512 -> capped at 1280 tokens: 1148x868 -> (1, 62, 82); once: (1, 60, 82)
    assert prompt(model, Item(image=LARGE))[1]["image_grid_thw"].tolist() == [[1, 62, 82]]
    two = prompt(model, Item(images=[SMALL, LARGE]))[1]["image_grid_thw"].tolist()
    assert two == [[1, 30, 36], [1, 62, 82]]


def test_qwen3_fetch_image_uses_32_pixel_multiples():
    model = Embedder.tiny(family="qwen3_vl", profile="qwen3-vl-embedding")
    assert model.config.pre_resize.factor == 32
    # 150x100 -> 160x96 (within 4-1800 tokens): grid (1, 6, 10), 15 tokens
    text, batch = prompt(model, Item(image=SMALL))
    assert batch["image_grid_thw"].tolist() == [[1, 6, 10]] and text.count(IMG) == 15


# ------------------------------------------------------------------------------------------------ instructions


def test_qwen3_appends_a_full_stop_to_an_instruction_without_final_punctuation():
    model = Embedder.tiny(family="qwen3_vl", profile="qwen3-vl-embedding")
    tail = "<|im_end|>\n" + USER + "a red circle" + TURN_END
    for given, system in [("Retrieve images that match", "Retrieve images that match."),
                          ("  Retrieve images that match  ", "Retrieve images that match."),
                          ("Which image matches?", "Which image matches?"),
                          ("Find the image:", "Find the image:")]:
        text, _ = prompt(model, Item(text="a red circle", instruction=given))
        assert text == "<|im_start|>system\n" + system + tail
    # no instruction: the default system turn, as written
    assert prompt(model, Item(text="a red circle"))[0] == "<|im_start|>system\nRepresent the user's input." + tail


def test_rzenembed_concatenates_instruction_and_text():
    model = Embedder.tiny(profile="rzenembed")
    text, _ = prompt(model, Item(text="a red circle", instruction="Find me an everyday image that matches the given caption: "))
    assert text == (SYSTEM + USER + "Find me an everyday image that matches the given caption: a red circle"
                    + TURN_END + EOT)  # one space: the instruction's own


# ------------------------------------------------------------------------------------------------ frames


def test_qwen3_video_file_frames_follow_smart_nframes(clip):
    policy = get_profile("qwen3-vl-embedding").config().frames
    # 24 frames / 8 fps x 1 fps = 3, raised to 4 (even): torch.linspace(0, 23, 4).round() = [0, 8, 15, 23]
    assert load_video(clip, policy).indices == [0, 8, 15, 23]
    model = Embedder.tiny(family="qwen3_vl", profile="qwen3-vl-embedding")
    text, batch = prompt(model, Item(video=str(clip)))
    # frames at 0, 1.0, 1.875 and 2.875 s; each temporal patch of 2 is stamped with its mean time
    assert "<0.5 seconds>" in text and "<2.4 seconds>" in text and text.count("seconds>") == 2
    # 64x48 frames raised to the 128-token minimum: 448x320 -> grid (2, 20, 28), 140 tokens per patch
    assert batch["video_grid_thw"].tolist() == [[2, 20, 28]] and text.count(VID) == 2 * 140


def test_qwen3_frame_lists_are_stamped_at_two_frames_a_second():
    model = Embedder.tiny(family="qwen3_vl", profile="qwen3-vl-embedding")
    text, _ = prompt(model, Item(video=FRAMES))
    # 4 frames at 0, 0.5, 1.0, 1.5 s (sample_fps 2.0, not the profile's 1 fps): patches at 0.25 and 1.25 s
    assert "<0.2 seconds>" in text and "<1.2 seconds>" in text and text.count("seconds>") == 2


def test_qwen3_list_frames_are_rounded_to_64_pixels_first(clip):
    model = Embedder.tiny(family="qwen3_vl", profile="qwen3-vl-embedding")
    # 64x48 at a 64-px factor: 64x64 is under 4 x 64 x 64, so raised: 192x128 (the processor then: 448x320)
    assert [frame.size for frame in model.decode(Item(video=FRAMES)).videos[0]] == [(192, 128)] * 4
    assert [frame.size for frame in model.decode(Item(video=str(clip))).videos[0]] == [(64, 48)] * 4  # files: no


def test_unite_video_file_keeps_at_least_four_frames(clip):
    policy = get_profile("unite").config().frames
    # qwen-vl-utils 0.0.8: 24 / 8 x 1 = 3 frames, at least 4: linspace(0, 23, 4).round() = [0, 8, 15, 23]
    assert load_video(clip, policy).indices == [0, 8, 15, 23]
    assert load_video(clip, FramePolicy(num_frames=32, fps=1.0)).indices == [0, 12, 23]  # uniembed's own rule


# ------------------------------------------------------------------------------------------------ variants


def test_umarvel_eval_variant_renders_the_generation_prompt_and_no_instruction_markers():
    item = Item(image=SMALL, text="a chart", instruction="Retrieve the page.")
    train, _ = prompt(Embedder.tiny(profile="u-marvel"), item)
    assert train.endswith(TURN_END + "<emb>.<|im_end|>\n")
    assert "<instruction_start>Retrieve the page.<instruction_end> a chart" in train
    model = Embedder.tiny(profile="u-marvel:eval")
    assert model.config.profile == "u-marvel:eval"
    text, batch = prompt(model, item)
    assert text.endswith(TURN_END + "<emb>.<|im_end|>\n<|im_start|>assistant\n")
    assert "<instruction_start>" not in text and "Retrieve the page. a chart" in text
    mask = batch["attention_mask"][0].bool()
    flagged = batch["input_ids"][0][mask][batch["instruction_mask"][0][mask]]
    assert model.backbone.tokenizer.decode(flagged) == "Retrieve the page."  # still left out of the mean


def test_unite_demo_variant_puts_nothing_between_image_and_text():
    item = Item(image=SMALL, text="What is the name of this place?")
    data, _ = prompt(Embedder.tiny(profile="unite"), item)
    demo, _ = prompt(Embedder.tiny(profile="unite:demo"), item)
    assert VE + "\nWhat is the name" in data
    assert VE + "What is the name" in demo
    assert get_profile("unite").follows == "mmeb-data"


def test_each_profile_says_whether_its_code_was_run_or_only_read(capsys):
    from uniembed.cli.main import main

    checked = {name: get_profile(name).checked for name in ("vlm2vec-v1", "vlm2vec-v2", "gme", "rzenembed", "unite",
                                                            "qwen3-vl-embedding", "u-marvel", "unime-qwen2-vl",
                                                            "unime-llava-onevision")}
    assert checked == {"vlm2vec-v1": "run", "vlm2vec-v2": "run", "gme": "run", "rzenembed": "run", "unite": "run",
                       "qwen3-vl-embedding": "run", "u-marvel": "read", "unime-qwen2-vl": "none",
                       "unime-llava-onevision": "read"}
    assert main(["profiles", "u-marvel"]) == 0
    shown = capsys.readouterr().out
    assert "checked against it: read" in shown and "other variants: u-marvel:eval" in shown
