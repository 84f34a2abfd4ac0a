"""Write a saved model in the forms other tools read: transformers, sentence-transformers and vLLM.

`write_interop_files(embedder, directory)` adds, beside the checkpoint `Embedder.save_pretrained` writes:
- `chat_template.jinja`: the embedding prompt as a chat template (`chat_template.py`);
- the processor files with the profile's pixel bounds (`processor_config.json`, `preprocessor_config.json`,
  `video_preprocessor_config.json`);
- the sentence-transformers modules (`modules.json`, `sentence_bert_config.json`, `1_Pooling/config.json`,
  `2_Normalize`, `config_sentence_transformers.json`) in the LEGACY form that vLLM's reader understands too;
- `matryoshka_dimensions` in `config.json` when the config names them;
- a model card `README.md` generated from `uniembed.json` and the training records beside it.
Each format rule names its source (repo@commit file:line) beside it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .chat_template import embedding_chat_template
from .config import EmbeddingConfig
from .model_card import model_card

# sentence-transformers reads these legacy module type names and maps them to its v5.4+/v6 classes
# (UKPLab/sentence-transformers@v6.3.0 sentence_transformers/util/deprecated_import.py:85-90); vLLM's
# get_pooling_config matches ONLY these names (vllm-project/vllm@main vllm/transformers_utils/config.py,
# get_pooling_config: item["type"] == "sentence_transformers.models.Pooling" / ".Normalize"; the newer
# paths are vllm issue #45995, PR #54533).
ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
# a multi-vector model is laid out as sentence-transformers 6.3's own MultiVectorEncoder save writes it (measured:
# MultiVectorEncoder(modules=[Transformer, Dense, MultiVectorMask, Normalize]).save): these module paths, a
# token-level Dense with the head's weights as `linear.weight`/`linear.bias`, `model_type: MultiVectorEncoder`
ST_MULTI_VECTOR_MODULES = (
    ("", "sentence_transformers.base.modules.transformer.Transformer"),
    ("1_Dense", "sentence_transformers.base.modules.dense.Dense"),
    ("2_MultiVectorMask", "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"),
    ("3_Normalize", "sentence_transformers.base.modules.normalize.Normalize"),
)
TOKEN_IO = {"module_input_name": "token_embeddings", "module_output_name": "token_embeddings"}

# uniembed pooling -> the sentence-transformers legacy boolean key that is true. vLLM's parse_pooling_type strips
# "pooling_mode_", cuts at the first "_" and maps "lasttoken" to LAST (vllm/transformers_utils/config.py).
# `eos` pools the appended token, which the chat template writes: last-token pooling then picks it.
ST_POOLING_KEYS = {"last": "pooling_mode_lasttoken", "eos": "pooling_mode_lasttoken", "mean": "pooling_mode_mean_tokens"}
# every legacy key (sentence_transformers/sentence_transformer/modules/pooling.py:16-23 _LEGACY_POOLING_MODE_KWARGS)
ST_MODALITIES = ("text", "image", "video", "image+text", "text+video", "image+video", "image+text+video")
LEGACY_POOLING_KEYS = ("pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens",
                       "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                       "pooling_mode_lasttoken")

# transformers processor classes per model type (huggingface/transformers@v5.23.0 models/*/processing_*.py)
PROCESSORS = {"qwen2_vl": ("Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
              "qwen2_5_vl": ("Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
              "qwen3_vl": ("Qwen3VLProcessor", "Qwen3VLVideoProcessor")}


def exportable(config: EmbeddingConfig, model_type: str) -> list[str]:
    """Why `config` cannot be reproduced by transformers' own forward (empty when it can).

    sentence-transformers and vLLM run the checkpoint's transformers model with its own M-RoPE and causal mask
    and pool the last (or every) token: uniembed options outside that are named here."""
    problems = []
    if model_type not in PROCESSORS:
        problems.append(f"model_type {model_type!r} (exportable: {sorted(PROCESSORS)})")
    if config.multi_vector_mask == "instruction" and config.multi_vector_dim is not None:
        problems.append("multi_vector_mask=instruction (MultiVectorMask keeps every real token of a query)")
    if config.pooling not in ST_POOLING_KEYS and config.multi_vector_dim is None:
        problems.append(f"pooling={config.pooling!r} (exportable: {sorted(ST_POOLING_KEYS)})")
    if config.attention != "causal":
        problems.append(f"attention={config.attention!r} (transformers' forward is causal)")
    if config.positions != "mrope" and model_type in PROCESSORS:
        problems.append(f"positions={config.positions!r} (transformers computes M-RoPE itself)")
    if config.video_as_images:
        problems.append("video_as_images=true (clients send a video part, the processor makes video tokens)")
    if not config.vision_markers:
        # transformers' M-RoPE (get_rope_index) finds each image by its <|vision_start|>: two or more unmarked
        # images fail in its forward (measured: a shape mismatch with vlm2vec-v2 and two images)
        problems.append("vision_markers=false (transformers locates media by <|vision_start|>)")
    if config.image_square is not None:
        problems.append(f"image_square={config.image_square} (the processor does not square images first)")
    if config.pre_resize is not None:
        # measured by `make test-interop`: a 64x48 image becomes grid 32x32 in uniembed, 28x38 in the processor
        problems.append("pre_resize (images are resized twice, as the authors' fetch_image does; the exported "
                        "processor resizes once)")
    if model_type == "qwen3_vl" and config.video_min_pixels is not None:
        # transformers@v5.23.0 video_processing_qwen3_vl.py:203-218 bounds t*h*w of the whole clip by
        # size.shortest_edge; cap_pixels_per_frame caps only the maximum (four 64x48 frames: grid 2x20x28 in
        # uniembed, 2x10x14 in the processor)
        problems.append(f"video_min_pixels={config.video_min_pixels} per frame (Qwen3VLVideoProcessor bounds the "
                        "whole clip, so small frames are not raised to the floor)")
    return problems


def ensure_empty(directory: Path, overwrite: bool) -> None:
    """Refuse to export into a folder that holds files, unless `overwrite` (then the folder is emptied)."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"export target '{directory}' is a file; give a folder")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise ConfigError(f"export folder '{directory}' is not empty; pick a new folder or pass --overwrite "
                              "(overwrite=True) to replace its contents")
        shutil.rmtree(directory)


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def sentence_transformers_files(config: EmbeddingConfig, dimension: int) -> dict[str, Any]:
    """The sentence-transformers module files (relative path -> JSON payload) for `config`."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_POOLING}]
    if config.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST_NORMALIZE})
    # legacy booleans, all of them: sentence-transformers 6.3 converts them (pooling.py:26-43, load_config);
    # vLLM takes the key whose value is `True` (get_pooling_config)
    pooling = {"word_embedding_dimension": dimension, **{key: False for key in LEGACY_POOLING_KEYS},
               ST_POOLING_KEYS[config.pooling]: True, "include_prompt": True}
    message = {"method": "forward", "method_output_name": "last_hidden_state"}
    bert_config = {
        # sentence_transformers/base/modules/transformer.py:798-807 config_keys; the "message" modality
        # with format "structured" routes every input through the processor's chat template (:961-966)
        "transformer_task": "feature-extraction",
        # every modality the model-level check admits (base/model.py:690-697); tuple keys are joined by "+"
        # (transformer.py:2812-2828); with "message" present, every input is turned into a structured message
        # and rendered by the processor's chat template (transformer.py:1407-1420)
        "modality_config": {**{key: message for key in ST_MODALITIES}, "message": {**message, "format": "structured"}},
        "module_output_name": "token_embeddings",
        "processing_kwargs": {"chat_template": {"add_generation_prompt": True}},
        "unpad_inputs": False,  # Qwen2-VL does not take unpadded inputs (transformer.py:772-775)
        "max_seq_length": config.max_length,
    }
    prompts = dict(config.prompts)
    if config.instruction_placement == "none":
        prompts = {}
    st_config = {
        # sentence_transformers/sentence_transformer/model.py: prompts, default_prompt_name, similarity_fn_name
        "prompts": {"query": prompts.get("query", ""), "document": prompts.get("document", ""),
                    **{k: v for k, v in prompts.items() if k not in ("query", "document")}},
        "default_prompt_name": config.default_prompt_name,
        "similarity_fn_name": "cosine",
        "model_type": "SentenceTransformer",
    }
    return {"modules.json": modules, "1_Pooling/config.json": pooling,
            "sentence_bert_config.json": bert_config, "config_sentence_transformers.json": st_config}


def multi_vector_files(config: EmbeddingConfig, hidden_size: int) -> dict[str, Any]:
    """The sentence-transformers >= 6 `MultiVectorEncoder` module files of a multi-vector model (relative path ->
    JSON payload): the backbone's token states, the head as a token-level Dense, the real-token mask, the
    per-token L2 norm; MaxSim scoring (the head's weights go to `1_Dense/model.safetensors`, `write_head`)."""
    single = sentence_transformers_files(config.replace(pooling="last"), hidden_size)
    modules = [{"idx": index, "name": str(index), "path": path, "type": kind}
               for index, (path, kind) in enumerate(ST_MULTI_VECTOR_MODULES)]
    dense = {"in_features": hidden_size, "out_features": config.multi_vector_dim, "bias": True,
             "activation_function": "torch.nn.modules.linear.Identity", **TOKEN_IO}
    # skiplist/allowlist off: every real token is scored, as uniembed's `multi_vector_mask: padding` keeps it
    mask = {"skiplist_words": [], "skiplist_tasks": ["document"], "keep_only_token_ids": None}
    st_config = dict(single["config_sentence_transformers.json"], model_type="MultiVectorEncoder",
                     similarity_fn_name="maxsim")
    return {"modules.json": modules, "sentence_bert_config.json": single["sentence_bert_config.json"],
            "config_sentence_transformers.json": st_config, "1_Dense/config.json": dense,
            "2_MultiVectorMask/config.json": mask, "3_Normalize/config.json": TOKEN_IO}


def write_head(directory: Path) -> None:
    """The late-interaction head saved in `directory` (`late_interaction.safetensors`, written first by
    `Embedder.save_pretrained`, from a sharded model's full tensors too) as sentence-transformers' Dense weights
    (`1_Dense/model.safetensors`)."""
    from safetensors.torch import load_file, save_file

    from .late_interaction import HEAD_FILE

    (directory / "1_Dense").mkdir(parents=True, exist_ok=True)
    state = {f"linear.{name}": value for name, value in load_file(str(directory / HEAD_FILE)).items()}
    save_file(state, str(directory / "1_Dense" / "model.safetensors"))


def processor_files(config: EmbeddingConfig, model_type: str, hf_config: Any, image_config: dict[str, Any]) -> dict[str, Any]:
    """`processor_config.json`, `preprocessor_config.json` and `video_preprocessor_config.json` with the profile's
    pixel bounds (transformers@v5.23.0 Qwen2VLImageProcessor `size = {shortest_edge: min_pixels, longest_edge:
    max_pixels}`, image_processing_qwen2_vl.py; the video processor reads the same keys)."""
    processor_class, video_class = PROCESSORS[model_type]
    vision = hf_config.vision_config
    geometry = {"patch_size": int(vision.patch_size), "temporal_patch_size": int(vision.temporal_patch_size),
                "merge_size": int(vision.spatial_merge_size)}
    image = {**image_config, **geometry, "size": {"shortest_edge": config.min_pixels, "longest_edge": config.max_pixels}}
    image.pop("min_pixels", None)
    image.pop("max_pixels", None)
    low = config.video_min_pixels or config.min_pixels
    video = {"video_processor_type": video_class, **geometry,
             "image_mean": image_config.get("image_mean"), "image_std": image_config.get("image_std"),
             "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
             "do_convert_rgb": True, "do_sample_frames": False,  # uniembed samples frames before the model
             "size": {"shortest_edge": low, "longest_edge": max(low, config.video_max_pixels)},
             "processor_class": processor_class}
    if model_type == "qwen3_vl":
        # Qwen3VLVideoProcessor bounds t*h*w of the whole clip by `size`; with `cap_pixels_per_frame` each frame is
        # capped at `max_video_tokens` tokens (transformers@v5.23.0 video_processing_qwen3_vl.py:203-218), which is
        # uniembed's per-frame bound when `longest_edge` is too large to bind (frames up to frames.num_frames, 64+)
        token_pixels = (geometry["patch_size"] * geometry["merge_size"]) ** 2
        video.update(cap_pixels_per_frame=True, max_video_tokens=max(1, video["size"]["longest_edge"] // token_pixels),
                     size={"shortest_edge": low, "longest_edge": video["size"]["longest_edge"] * max(64, config.frames.num_frames or 64)})
    return {"processor_config.json": {"processor_class": processor_class},
            "preprocessor_config.json": {**image, "processor_class": processor_class},
            "video_preprocessor_config.json": video}


def write_interop_files(embedder: Any, directory: str | Path, matryoshka_dimensions: list[int] | None = None) -> list[str]:
    """Add the transformers / sentence-transformers / vLLM files beside a checkpoint already saved in `directory`.

    `matryoshka_dimensions` default to the widths the model was trained at (`config.matryoshka_dims`).
    Returns what it could not make faithful (empty when sentence-transformers and vLLM embed as uniembed does);
    the files are written either way, the caveats go into the model card."""
    directory = Path(directory)
    config: EmbeddingConfig = embedder.config
    hf_config = embedder.backbone.hf_model.config
    model_type = str(hf_config.model_type)
    problems = exportable(config, model_type)
    if matryoshka_dimensions is None:
        matryoshka_dimensions = config.matryoshka_dims
    if model_type in PROCESSORS:
        (directory / "chat_template.jinja").write_text(
            embedding_chat_template(config, model_type, type(embedder.backbone).chat))
        image_config = _read_json(directory / "preprocessor_config.json")
        for name, payload in processor_files(config, model_type, hf_config, image_config).items():
            _write_json(directory / name, payload)
        if config.multi_vector_dim is not None:
            for name, payload in multi_vector_files(config, embedder.dimension).items():
                _write_json(directory / name, payload)
            write_head(directory)
        else:
            pooling = config.pooling if config.pooling in ST_POOLING_KEYS else "last"
            for name, payload in sentence_transformers_files(config.replace(pooling=pooling), embedder.dimension).items():
                _write_json(directory / name, payload)
            (directory / "2_Normalize").mkdir(exist_ok=True) if config.normalize else None
    if matryoshka_dimensions:
        # vllm docs/models/pooling_models/: `matryoshka_dimensions` in config.json enables the `dimensions` field
        hf_json = _read_json(directory / "config.json")
        hf_json["matryoshka_dimensions"] = sorted({int(d) for d in matryoshka_dimensions}, reverse=True)
        _write_json(directory / "config.json", hf_json)
    (directory / "README.md").write_text(model_card(directory, embedder, problems))
    return problems
