"""Model profiles: each published family's prompt, tokens and pixels, written out BY HAND from its authors' code.

The expected prompt strings below are typed from the facts (sources in src/uniembed/models/profiles/*.yaml),
not built with the template code; the tiny tokenizer carries Qwen2-VL's special tokens, so the decoded prompt
must equal the reference's prompt string character for character. Visual-token counts and grids are worked
out by hand from Qwen2-VL's smart resize (28-pixel factor, 2x2 merge, 2-frame temporal patches).
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from uniembed import ConfigError, Embedder, Item
from uniembed.data.examples import EvalTask
from uniembed.eval.profiles import profile_groups
from uniembed.media import uniform_indices
from uniembed.models.profile import available_profiles, get_profile

IMG, VID, VS, VE = "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"
SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
USER, TURN_END = "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"
EOT = "<|endoftext|>"


def solid(width: int, height: int, value: int = 128) -> Image.Image:
    return Image.new("RGB", (width, height), (value, 255 - value, 60))


PHOTO = solid(600, 400)          # Qwen2-VL bounds 3136..1003520: 392x588 -> grid (1, 28, 42), 294 tokens
SMALL = solid(320, 240, 30)      # min 3136: 252x308 -> (1, 18, 22), 99 tokens; min 200704: 392x532 -> (1, 28, 38), 266
# ... and when fetch_image's pre-resize (28-px multiples, 4-16384 tokens) comes first (GME, RzenEmbed, UNITE):
# 320x240 -> 308x252, which the 200704 minimum raises to 504x420 -> (1, 30, 36), 270 tokens
PAGE = solid(850, 1100, 250)     # max 1003520: 1092x840 -> (1, 78, 60), 1170 tokens; max 235200: 532x420 -> (1, 38, 30), 285
FRAMES = [solid(64, 48, 20 * i) for i in range(10)]  # frame i is told apart by its red value 20 * i

TEXT = Item(text="a red circle", instruction="Find me an everyday image that matches the given caption:")
IMAGE = Item(image=PHOTO, text="What colour is it?", instruction="Represent the given image with the following question:")
TWO = Item(images=[PHOTO, SMALL], text="the left one", instruction="Select the image that matches:")
VIDEO = Item(video=FRAMES, instruction="Understand the content of the provided video.")
CANDIDATE = Item(image=PHOTO, instruction="Represent the given image.")


def prompt(model: Embedder, item: Item) -> tuple[str, dict]:
    """The decoded prompt of one item as `Embedder.collate` builds it, and its batch."""
    batch = model.collate([model.decode(item)])
    ids = batch["input_ids"][0][batch["attention_mask"][0].bool()].tolist()
    return model.backbone.tokenizer.decode(ids), batch


def grids(batch: dict, kind: str = "image") -> list[list[int]]:
    return batch[f"{kind}_grid_thw"].tolist()


def picked_frames(model: Embedder, item: Item) -> list[int]:
    decoded = model.decode(item)
    frames = decoded.videos[0] if decoded.videos else decoded.images[-decoded.frame_images:]
    return [frame.getpixel((0, 0))[0] // 20 for frame in frames]


def visdoc_task() -> EvalTask:
    return EvalTask(name="ViDoRe_docvqa", queries=[Item(text="what is the total?")], candidates=[Item(image=PAGE)],
                    qrels=[{0: 1.0}], metric="ndcg@5", modality_group="visdoc")


def visdoc_prompts(model: Embedder) -> tuple[str, str, dict]:
    """The query and candidate prompts of a ViDoRe task after `evaluate` applied the profile to it."""
    [(encoder, [task])] = profile_groups(model, [visdoc_task()])
    query, _ = prompt(encoder, task.queries[0])
    candidate, batch = prompt(encoder, task.candidates[0])
    return query, candidate, batch


# ------------------------------------------------------------------------------------------------ VLM2Vec V1


@pytest.fixture(scope="module")
def vlm2vec_v1():
    return Embedder.tiny(profile="vlm2vec-v1")


def test_vlm2vec_v1_raw_text_bare_image_pad_trailing_newline_and_1344_square(vlm2vec_v1):
    model = vlm2vec_v1
    # raw MMEB text, no chat template: "Find me ... caption: {caption}\n"
    assert prompt(model, TEXT)[0] == "Find me an everyday image that matches the given caption: a red circle\n"
    # "<|image_1|>\n{instruction} {text}\n", <|image_1|> -> bare <|image_pad|> x 1225 (1344 square -> 980x980)
    text, batch = prompt(model, IMAGE)
    assert text == IMG * 1225 + "\nRepresent the given image with the following question: What colour is it?\n"
    assert grids(batch) == [[1, 70, 70]] and batch["image_pixel_values"].shape == (4900, 1176)
    text, batch = prompt(model, TWO)
    assert text == IMG * 2450 + "\nSelect the image that matches: the left one\n"
    assert grids(batch) == [[1, 70, 70], [1, 70, 70]]
    assert prompt(model, CANDIDATE)[0] == IMG * 1225 + "\nRepresent the given image.\n"
    # video: 8 of 10 frames, floor-rounded linspace; frames squared too: 4 x 35 x 35 tokens
    assert picked_frames(model, VIDEO) == [0, 1, 2, 3, 5, 6, 7, 9]
    text, batch = prompt(model, VIDEO)
    assert text == VID * 4900 + "\nUnderstand the content of the provided video.\n"
    assert grids(batch, "video") == [[4, 70, 70]]
    # a document page under MMEB-V2's visdoc instructions, joined by process_input_text alone (" ", no "\n")
    query, candidate, batch = visdoc_prompts(model)
    assert query == "Find a document image that matches the given query: what is the total?"
    assert candidate == IMG * 1225 + " Understand the content of the provided document image."
    assert grids(batch) == [[1, 70, 70]]


def test_vlm2vec_v1_positions_are_plain_counts_and_pooling_is_the_last_token(vlm2vec_v1):
    batch = vlm2vec_v1.collate([vlm2vec_v1.decode(Item(image=SMALL, instruction="Represent the given image.")),
                                vlm2vec_v1.decode(TEXT)])
    real = batch["attention_mask"].bool()
    for row in range(2):
        n = int(real[row].sum())
        assert torch.equal(batch["position_ids"][:, row, real[row]], torch.arange(n).expand(3, n))
    assert vlm2vec_v1.config.pooling == "last" and vlm2vec_v1.config.eos_token is None


# ------------------------------------------------------------------------------------------------ VLM2Vec V2


def test_vlm2vec_v2_processor_resolution_floor_frames_and_fixed_video_instructions():
    model = Embedder.tiny(profile="vlm2vec-v2")
    assert prompt(model, TEXT)[0] == "Find me an everyday image that matches the given caption: a red circle\n"
    text, batch = prompt(model, IMAGE)
    assert text == IMG * 294 + "\nRepresent the given image with the following question: What colour is it?\n"
    assert grids(batch) == [[1, 28, 42]]
    text, batch = prompt(model, TWO)
    assert text == IMG * (294 + 99) + "\nSelect the image that matches: the left one\n"
    assert grids(batch) == [[1, 28, 42], [1, 18, 22]]
    assert prompt(model, CANDIDATE)[0] == IMG * 294 + "\nRepresent the given image.\n"
    # 64x48 frames -> 56x56 (4 tokens each), 8 frames -> 4 temporal patches
    assert picked_frames(model, VIDEO) == [0, 1, 2, 3, 5, 6, 7, 9]
    text, batch = prompt(model, VIDEO)
    assert grids(batch, "video") == [[4, 4, 4]]
    assert text == VID * 16 + "\nUnderstand the content of the provided video.\n"
    query, candidate, batch = visdoc_prompts(model)
    assert query == "Find a document image that matches the given query: what is the total?"
    assert candidate == IMG * 1170 + " Understand the content of the provided document image."
    assert grids(batch) == [[1, 78, 60]]
    profile = get_profile("vlm2vec-v2")
    # MSR-VTT: the reference's hard-coded pair; K700 keeps the data's candidates (labels) as they are
    assert profile.task_instructions("MSR-VTT") == ("Find a video that contains the following visual content:",
                                                   "Understand the content of the provided video.")
    assert profile.task_instructions("K700") == ("Recognize the category of the video content.", None)
    assert profile.task_instructions("ImageNet-1K") is None  # MMEB image tasks: the data's own instructions
    video_task = EvalTask(name="MSR-VTT", queries=[Item(text="a man cooks")], candidates=[Item(video=FRAMES)],
                          qrels=[{0: 1.0}], modality_group="video")
    [(encoder, [task])] = profile_groups(model, [video_task])
    assert prompt(encoder, task.queries[0])[0] == "Find a video that contains the following visual content: a man cooks"
    assert prompt(encoder, task.candidates[0])[0] == VID * 16 + " Understand the content of the provided video."


# ------------------------------------------------------------------------------------------------ GME


def test_gme_instruction_is_the_system_prompt_and_endoftext_is_pooled():
    model = Embedder.tiny(profile="gme")
    assert prompt(model, TEXT)[0] == (
        "<|im_start|>system\nFind me an everyday image that matches the given caption:<|im_end|>\n"
        + USER + "a red circle" + TURN_END + EOT)
    text, batch = prompt(model, IMAGE)
    assert text == ("<|im_start|>system\nRepresent the given image with the following question:<|im_end|>\n"
                    + USER + VS + IMG * 294 + VE + "What colour is it?" + TURN_END + EOT)
    assert grids(batch) == [[1, 28, 42]]
    text, batch = prompt(model, TWO)  # 320x240: fetch_image's 308x252, raised to the 256-token minimum: 504x420
    assert text == ("<|im_start|>system\nSelect the image that matches:<|im_end|>\n" + USER + VS + IMG * 294 + VE
                    + VS + IMG * 270 + VE + "the left one" + TURN_END + EOT)
    assert grids(batch) == [[1, 28, 42], [1, 30, 36]]
    # a candidate without a query instruction gets the default system prompt
    text, _ = prompt(model, Item(image=PAGE))
    assert text == SYSTEM + USER + VS + IMG * 1170 + VE + TURN_END + EOT
    # GME released no video path (its video branch is commented out): no video golden


# ------------------------------------------------------------------------------------------------ UNITE


def test_unite_summary_names_every_modality_and_strips_the_text():
    model = Embedder.tiny(profile="unite")
    assert prompt(model, Item(text="a red circle"))[0] == (
        SYSTEM + USER + "a red circle\nSummary above sentence in one word:" + TURN_END + EOT)
    text, batch = prompt(model, IMAGE)
    assert text == (SYSTEM + USER + VS + IMG * 294 + VE + "\nRepresent the given image with the following question: "
                    "What colour is it?\nSummary above sentence and image in one word:" + TURN_END + EOT)
    assert grids(batch) == [[1, 28, 42]]
    text, batch = prompt(model, Item(image=SMALL))  # qwen-vl-utils 0.0.8 fetch_image first: 270 tokens
    assert text == SYSTEM + USER + VS + IMG * 270 + VE + "\nSummary above image in one word:" + TURN_END + EOT
    assert grids(batch) == [[1, 30, 36]]
    text, batch = prompt(model, TWO)
    assert text == (SYSTEM + USER + VS + IMG * 294 + VE + VS + IMG * 270 + VE + "\nSelect the image that matches: "
                    "the left one\nSummary above sentence and image in one word:" + TURN_END + EOT)
    # fps 1 over a frame list (no timestamps): all 10 frames, nearest rounding; 64x48 -> 392x532 -> 5 x 14 x 19
    assert picked_frames(model, VIDEO) == list(range(10))
    text, batch = prompt(model, Item(video=FRAMES))
    assert text == SYSTEM + USER + VS + VID * 1330 + VE + "\nSummary above video in one word:" + TURN_END + EOT
    assert grids(batch, "video") == [[5, 28, 38]]


# ------------------------------------------------------------------------------------------------ RzenEmbed


def test_rzenembed_images_then_instruction_then_text_and_video_as_eight_frames():
    model = Embedder.tiny(profile="rzenembed")
    # instruction + text, concatenated (rzen_embed_inference.py:205): its README's instructions end in ": "
    assert prompt(model, TEXT.with_instruction("Find me an everyday image that matches the given caption: "))[0] == (
        SYSTEM + USER + "Find me an everyday image that matches the given caption: a red circle" + TURN_END + EOT)
    assert prompt(model, TEXT)[0] == (
        SYSTEM + USER + "Find me an everyday image that matches the given caption:a red circle" + TURN_END + EOT)
    text, batch = prompt(model, CANDIDATE)
    assert text == SYSTEM + USER + VS + IMG * 294 + VE + "Represent the given image." + TURN_END + EOT
    text, batch = prompt(model, TWO)
    assert text == (SYSTEM + USER + VS + IMG * 294 + VE + VS + IMG * 270 + VE
                    + "Select the image that matches:the left one" + TURN_END + EOT)
    assert grids(batch) == [[1, 28, 42], [1, 30, 36]]
    # 8 frames, floor linspace, each an image of 160-180 tokens; fetch_image first: 64x48 -> 56x56, which the
    # 125440 minimum raises to 364x364 (169 tokens; without the pre-resize 308x420, 165)
    assert picked_frames(model, VIDEO) == [0, 1, 2, 3, 5, 6, 7, 9]
    text, batch = prompt(model, VIDEO)
    assert text == (SYSTEM + USER + (VS + IMG * 169 + VE) * 8 + "Understand the content of the provided video."
                    + TURN_END + EOT)
    assert grids(batch) == [[1, 26, 26]] * 8
    query, candidate, batch = visdoc_prompts(model)
    assert query == SYSTEM + USER + "Find a document image that matches the given query: what is the total?" + TURN_END + EOT
    assert candidate == (SYSTEM + USER + VS + IMG * 1170 + VE + "Understand the content of the provided document image."
                         + TURN_END + EOT)
    assert model.config.padding_side == "right"


# ------------------------------------------------------------------------------------------------ UniME, U-MARVEL


def test_unime_summary_in_the_chat_template():
    model = Embedder.tiny(profile="unime-qwen2-vl")
    text, batch = prompt(model, Item(image=PHOTO))
    assert text == SYSTEM + USER + VS + IMG * 294 + VE + "\nSummary above image in one word:" + TURN_END
    assert prompt(model, Item(text="a red circle"))[0] == (
        SYSTEM + USER + "a red circle\nSummary above sentence in one word:" + TURN_END)
    text, batch = prompt(model, VIDEO)  # library video defaults: 8 frames, nearest; 56x56 frames
    assert picked_frames(model, VIDEO) == [0, 1, 3, 4, 5, 6, 8, 9]
    assert text == (SYSTEM + USER + VS + VID * 16 + VE + "\nUnderstand the content of the provided video."
                    "\nSummary above video in one word:" + TURN_END)


def test_umarvel_summary_names_the_image_first_and_the_assistant_turn_is_in_the_prompt():
    model = Embedder.tiny(profile="u-marvel")
    text, batch = prompt(model, Item(image=PAGE, text="a chart", instruction="Retrieve the page."))
    assert text == (SYSTEM + USER + VS + IMG * 285 + VE + "<instruction_start>Retrieve the page.<instruction_end> a chart"
                    "\nSummarize above image and sentence in one word: " + TURN_END + "<emb>.<|im_end|>\n")
    assert grids(batch) == [[1, 38, 30]]  # at most 300 tokens
    flags = batch["instruction_mask"][0][batch["attention_mask"][0].bool()]
    assert model.backbone.tokenizer.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()][flags]) == (
        "<instruction_start>Retrieve the page.<instruction_end>")
    assert prompt(model, Item(text="a chart"))[0] == (
        SYSTEM + USER + "a chart\nSummarize above sentence in one word: " + TURN_END + "<emb>.<|im_end|>\n")


# ------------------------------------------------------------------------------------------------ mechanism


def test_every_profile_is_well_formed_and_cites_its_sources():
    names = {p.name for p in available_profiles()}
    assert {"vlm2vec-v1", "vlm2vec-v2", "gme", "unite", "unime-qwen2-vl", "rzenembed", "u-marvel"} <= names
    for profile in available_profiles():
        assert profile.sources and profile.inference_code and profile.published and profile.backbones
        config = profile.config()
        assert config.profile == profile.name
        settings = dict(profile.embedding)
        assert all(config.frames.to_dict()[key] == value for key, value in settings.pop("frames", {}).items())
        assert all(getattr(config, key) == value or config.to_dict()[key] == value for key, value in settings.items())


def test_floor_and_nearest_frame_rounding_differ_where_the_reference_does():
    assert uniform_indices(10, 8, "floor") == [0, 1, 2, 3, 5, 6, 7, 9]   # np.linspace(0, 9, 8, dtype=int)
    assert uniform_indices(10, 8, "nearest") == [0, 1, 3, 4, 5, 6, 8, 9]
    assert uniform_indices(64, 1, "floor") == [0]
    differing = [n for n in range(8, 65) if uniform_indices(n, 8, "floor") != uniform_indices(n, 8, "nearest")]
    assert len(differing) == 48  # the count: 48 of the 57 frame counts 8..64
    for n in range(8, 65):
        assert uniform_indices(n, 8, "floor") == np.linspace(0, n - 1, 8, dtype=int).tolist()


def test_profile_detection_saved_profile_and_overrides(tmp_path, caplog):
    source = Embedder.tiny()
    plain = tmp_path / "VLM2Vec-Qwen2VL-2B"
    source.backbone.save(plain)  # a HF checkpoint with no uniembed.json, named as the published one
    with caplog.at_level(logging.INFO, logger="uniembed.models.loading"):
        loaded = Embedder.from_pretrained(plain)
    assert loaded.config.profile == "vlm2vec-v1" and not loaded.config.chat_template
    assert [r for r in caplog.records if "profile 'vlm2vec-v1'" in r.getMessage()]
    # explicit options override single settings; profile="none" keeps the library defaults
    assert Embedder.from_pretrained(plain, image_square=None).config.image_square is None
    assert Embedder.from_pretrained(plain, profile="none").config.chat_template
    assert Embedder.from_pretrained(plain, profile="gme").config.instruction_placement == "system"
    json.loads((plain / "config.json").read_text())
    # a model saved by uniembed records its profile and loads under it
    trained = Embedder.tiny(profile="unite")
    trained.save_pretrained(tmp_path / "mine")
    assert json.loads((tmp_path / "mine" / "uniembed.json").read_text())["embedding"]["profile"] == "unite"
    assert Embedder.from_pretrained(tmp_path / "mine").config == trained.config
    with pytest.raises(ConfigError, match="unknown profile"):
        Embedder.from_pretrained(plain, profile="vlm2vec-v9")


# ------------------------------------------------------------------------------------------------ parity

PARITY_PROFILES = ["vlm2vec-v1", "vlm2vec-v2", "gme", "unite", "unime-qwen2-vl", "rzenembed"]


def reference_positions(hf_model, ids: torch.Tensor, image_grid: torch.Tensor | None, rule: str) -> torch.Tensor:
    """One unpadded row's positions by the profile's rule, computed by transformers where it can."""
    if rule == "1d":  # what the reference ran: plain counts on all three streams
        return torch.arange(ids.shape[1]).expand(3, 1, -1)
    types = (ids == hf_model.config.image_token_id).long()
    positions, _ = hf_model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=image_grid,
                                                 attention_mask=torch.ones_like(ids))
    return positions


@pytest.mark.parametrize("name", PARITY_PROFILES)
def test_embeddings_equal_transformers_forward_under_each_profile(name):
    """Per profile, a padded batch's embeddings equal transformers' own forward of each unpadded row with the
    profile's position rule and a causal mask: a position or mask error changes them."""
    model = Embedder.tiny(profile=name, min_pixels=4 * 784, max_pixels=16 * 784, image_square=None)
    items = [Item(image=SMALL, text="the left one", instruction="Select the image that matches:"),
             Item(text="a red circle much longer than the other text in the batch", instruction="Find:")]
    hf_model = model.backbone.model
    if model.config.positions == "mrope" and "mm_token_type_ids" not in __import__("inspect").signature(
            hf_model.model.get_rope_index).parameters:
        pytest.skip("this transformers version computes M-RoPE without mm_token_type_ids")
    ours = model.encode(items, batch_size=2)
    for row, item in enumerate(items):
        batch = model.collate([model.decode(item)])
        ids = batch["input_ids"]
        grid = batch.get("image_grid_thw")
        with torch.no_grad():
            hidden = hf_model.model(input_ids=ids, attention_mask=torch.ones_like(ids),
                                    position_ids=reference_positions(hf_model, ids, grid, model.config.positions),
                                    pixel_values=batch.get("image_pixel_values"), image_grid_thw=grid).last_hidden_state
        expected = torch.nn.functional.normalize(hidden[0, -1].float(), dim=-1).numpy()
        np.testing.assert_allclose(ours[row], expected, atol=2e-5)


def test_evaluate_applies_the_profile_once_after_loading_tasks(tmp_path):
    """`evaluate` puts the profile's instructions and layout on the tasks it names and scores all tasks in order."""
    from uniembed.eval.evaluate import evaluate

    model = Embedder.tiny(profile="vlm2vec-v2", min_pixels=4 * 784, max_pixels=16 * 784, video_max_pixels=4 * 784)
    image_task = EvalTask(name="ImageNet-1K", queries=[Item(image=PHOTO, instruction="Represent the given image for "
                                                          "classification")], candidates=[Item(text="red"), Item(text="blue")],
                          qrels=[{0: 1.0}], candidate_lists=[[0, 1]])
    evaluation = evaluate(model, "mmeb-v2", tmp_path, tasks=[visdoc_task(), image_task], progress=False,
                          cache_dir=tmp_path / "cache")
    assert [r.name for r in evaluation.results] == [t.name for t in evaluation.tasks]
    by_name = {t.name: t for t in evaluation.tasks}
    assert by_name["ViDoRe_docvqa"].queries[0].instruction == "Find a document image that matches the given query:"
    assert by_name["ViDoRe_docvqa"].candidates[0].instruction == "Understand the content of the provided document image."
    assert by_name["ImageNet-1K"].queries[0].instruction == "Represent the given image for classification"
    assert by_name["ImageNet-1K"].candidates[0].instruction is None


def test_cli_lists_profiles_and_loads_models_under_one(capsys):
    from uniembed.cli.main import main

    assert main(["profiles", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["vlm2vec-v2"]["published"]["VLM2Vec-V2.0"]["mmeb_v2_overall"] == 58.0
    assert all(p["sources"] for p in listed.values())
    assert main(["profiles", "vlm2vec-v2"]) == 0
    assert "Find a document image that matches the given query:" in capsys.readouterr().out
    assert main(["info", "--model", "tiny", "--profile", "rzenembed", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile"] == "rzenembed" and info["embedding_config"]["padding_side"] == "right"
    assert main(["info", "--model", "tiny", "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
