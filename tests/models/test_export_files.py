"""`uniembed export` / `Embedder.save_pretrained`: the chat template gives uniembed's exact tokens, vLLM's rules
read the pooling files as uniembed pools, the folder refuses to be overwritten, the model card tells the truth."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image
from vllm_rules import EMBEDDING_ARCHITECTURES, pooling_config

from uniembed.cli.main import main
from uniembed.errors import ConfigError
from uniembed.inputs import Item
from uniembed.models.chat_template import embedding_chat_template
from uniembed.models.embedder import Embedder
from uniembed.models.export import export_model
from uniembed.models.interop import exportable

RED = Image.new("RGB", (64, 48), (200, 30, 30))
BLUE = Image.new("RGB", (40, 40), (0, 0, 255))
FRAMES = [Image.new("RGB", (64, 48), (i * 60, 30, 30)) for i in range(4)]
ITEMS = {
    "text": Item("a red circle"),
    "image": Item(None, image=RED),
    "text+image": Item("a red circle", image=RED),
    "two images": Item("two", images=[RED, BLUE]),
    "instruction": Item("a red circle", instruction="Find the image."),
    "video": Item(None, video=FRAMES),
    "text+video+instruction": Item("moving", video=FRAMES, instruction="Retrieve."),
}
# (family, profile): the profiles of each family whose layout the template must reproduce
CASES = [("qwen2_vl", None), ("qwen2_vl", "vlm2vec-v1"), ("qwen2_vl", "vlm2vec-v2"), ("qwen2_vl", "gme"),
         ("qwen2_vl", "unite"), ("qwen2_vl", "unime-qwen2-vl"), ("qwen3_vl", None), ("qwen3_vl", "qwen3-vl-embedding")]


def vllm_messages(item: Item) -> list[dict]:
    """The request a vLLM client sends: system = instruction, user = image_url / video_url / text parts."""
    images = item.images or ([item.image] if item.image is not None else [])
    content = [{"type": "image_url", "image_url": {"url": f"img{i}.png"}} for i in range(len(images))]
    if item.video is not None:
        content.append({"type": "video_url", "video_url": {"url": "clip.mp4"}})
    if item.text:
        content.append({"type": "text", "text": item.text})
    return ([{"role": "system", "content": item.instruction}] if item.instruction else []) + \
        [{"role": "user", "content": content}]


def expand_media(prompt: str, visuals, qwen3: bool) -> str:
    """What the processor does to the rendered prompt: only each pad token is replaced, the text around it stays
    (transformers@v5.23.0 processing_utils.py ProcessorMixin expands the image/video token; Qwen2VLProcessor
    repeats <|image_pad|> / <|video_pad|> num_tokens times; Qwen3VLProcessor.replace_video_token writes one
    "<{t:.1f} seconds><|vision_start|>" + pads + "<|vision_end|>" per temporal patch)."""
    remaining = iter(visuals)

    def replace(match: re.Match) -> str:
        visual = next(remaining)
        if visual.kind == "video" and qwen3:
            per_frame = visual.num_tokens // visual.grid_thw[0]
            return "".join(f"<{t:.1f} seconds><|vision_start|>{'<|video_pad|>' * per_frame}<|vision_end|>"
                           for t in visual.timestamps)
        return match.group(0) * visual.num_tokens

    return re.sub(r"<\|image_pad\|>|<\|video_pad\|>", replace, prompt)


@pytest.mark.parametrize("family,profile", CASES)
def test_chat_template_tokens_equal_uniembed_input_ids(family, profile):
    model = Embedder.tiny(family=family, profile=profile)
    backbone, config = model.backbone, model.config
    template = embedding_chat_template(config, backbone.model.config.model_type, backbone.chat)
    for name, item in ITEMS.items():
        ids, _, visuals = backbone.item_tokens(model.decode(item), config)
        rendered = backbone.tokenizer.apply_chat_template(vllm_messages(item), chat_template=template,
                                                          tokenize=False, add_generation_prompt=True)
        expanded = expand_media(rendered, visuals, family == "qwen3_vl")
        assert backbone.tokenizer(expanded, add_special_tokens=False)["input_ids"] == ids, (family, profile, name)


def test_export_writes_what_vllm_reads(tmp_path):
    out = tmp_path / "out"
    caveats = export_model("tiny:qwen3_vl", out, profile="qwen3-vl-embedding", matryoshka_dimensions=[32, 64, 16])
    assert len(caveats) == 2 and "pre_resize" in caveats[0] and "video_min_pixels" in caveats[1]  # measured gaps
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"][0] in EMBEDDING_ARCHITECTURES
    assert config["matryoshka_dimensions"] == [64, 32, 16]
    assert pooling_config(out) == {"use_activation": True, "seq_pooling_type": "LAST"}
    image = json.loads((out / "preprocessor_config.json").read_text())
    assert image["size"] == {"shortest_edge": 4096, "longest_edge": 1843200}  # the profile's pixel bounds
    video = json.loads((out / "video_preprocessor_config.json").read_text())
    # per-frame bound: 768 tokens of 32x32 px (the clip-wide longest_edge is set too large to bind)
    assert video["cap_pixels_per_frame"] is True and video["max_video_tokens"] == 786432 // 1024
    # per-frame floor: 128 tokens of 32x32 px (qwen-vl-utils 0.0.14 VIDEO_MIN_TOKEN_NUM, see the profile)
    assert video["size"] == {"shortest_edge": 128 * 1024, "longest_edge": 786432 * 64}
    assert (out / "chat_template.jinja").read_text().count("Represent the user's input.") == 1
    st = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st["similarity_fn_name"] == "cosine" and set(st["prompts"]) >= {"query", "document"}
    assert "qwen3-vl-embedding" in (out / "README.md").read_text()


def test_mean_pooling_exports_mean_for_vllm(tmp_path):
    Embedder.tiny(pooling="mean", normalize=False).save_pretrained(tmp_path)
    assert pooling_config(tmp_path) == {"use_activation": False, "seq_pooling_type": "MEAN"}


def test_unfaithful_options_are_named():
    problems = exportable(Embedder.tiny(attention="bidirectional", positions="1d").config, "qwen2_vl")
    assert any("attention" in p for p in problems) and any("positions" in p for p in problems)
    assert exportable(Embedder.tiny().config, "qwen2_vl") == []
    gme = exportable(Embedder.tiny(profile="gme").config, "qwen2_vl")
    assert any("pre_resize" in p for p in gme)  # images resized twice: sentence-transformers' grids differ


def test_export_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not empty.*--overwrite"):
        export_model("tiny", out)
    assert (out / "keep.txt").exists()
    assert main(["export", "tiny", str(out)]) != 0
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "tiny", str(out), "--overwrite"]) == 0
    assert not (out / "keep.txt").exists() and (out / "modules.json").exists()


def test_model_card_reports_training_records(tmp_path):
    source = tmp_path / "run"
    Embedder.tiny().save_pretrained(source)
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "a"}\n{"query": "b"}\n{"query": "c"}\n')
    (source / "recipe.yaml").write_text(f"name: demo\nmodel: tiny\nstages:\n  - name: s1\n    data: [{data}]\n"
                                        "    loss: {kind: contrastive}\n    max_steps: 7\n")
    (source / "training_state.json").write_text('{"stage": "s1", "steps": 7}')
    (source / "eval_results.json").write_text('{"scores": {"ndcg@10": 0.5}}')
    export_model(str(source), tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "`demo`" in card and "(3 rows)" in card and "contrastive" in card
    assert "Trained steps: 7" in card and "ndcg@10" in card


def test_from_pretrained_reads_a_sentence_transformers_folder(tmp_path):
    """A published checkpoint laid out for sentence-transformers (no uniembed.json): the family is detected from
    the name and the prompts come from config_sentence_transformers.json."""
    folder = tmp_path / "Qwen3-VL-Embedding-2B"
    Embedder.tiny(family="qwen3_vl").save_pretrained(folder)
    (folder / "uniembed.json").unlink()
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "Retrieve images that match the query.", "document": ""}, "default_prompt_name": None,
         "similarity_fn_name": "cosine"}))
    model = Embedder.from_pretrained(folder)
    assert model.config.profile == "qwen3-vl-embedding"
    assert model.config.prompts["query"] == "Retrieve images that match the query."
    query = model.encode_query(["a red circle"])
    assert not np.allclose(query, model.encode(["a red circle"]))
    assert np.allclose(query, model.encode(["a red circle"], instruction="Retrieve images that match the query."))


def test_lora_is_merged_and_kept_on_request(tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    base = Embedder.tiny()
    base.backbone.model = get_peft_model(base.backbone.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # peft starts B at zero (a no-op adapter): make the adapter change the vectors
        for name, parameter in base.backbone.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model = Embedder(base.backbone, base.config)
    assert not np.allclose(model.encode(["a red circle"]), Embedder.tiny().encode(["a red circle"]), atol=1e-3)
    model.save_pretrained(tmp_path / "out", keep_adapter=True)
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").exists()
    assert not (tmp_path / "out" / "adapter_config.json").exists()  # the top folder is a plain merged checkpoint
    merged = Embedder.from_pretrained(tmp_path / "out")
    np.testing.assert_allclose(merged.encode(["a red circle", {"text": "x", "image": RED}]),
                               model.encode(["a red circle", {"text": "x", "image": RED}]), atol=1e-5)
