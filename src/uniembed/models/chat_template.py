"""The Jinja chat template an exported model embeds with, written from its `EmbeddingConfig`.

Rendered by transformers' `apply_chat_template(messages, add_generation_prompt=True)` on the messages a vLLM
client (or sentence-transformers) sends -- a system message holding the instruction, one user message of text /
image(_url) / video(_url) parts -- it gives the prompt `templates.build_segments` lays out, with one media
placeholder per image or video that the processor (or vLLM) expands into the visual tokens.

The template always ends with the assistant start (and the profile's appended token): vLLM's embedding chat
requests render with `add_generation_prompt=False` unless the client sets it, and the embedding must not depend on it.
"""
from __future__ import annotations

import json

from ..errors import ConfigError
from .config import EmbeddingConfig
from .templates import ChatFormat

# The text a processor replaces by the visual tokens of one image / video, per transformers model type.
# Qwen2-VL / Qwen3-VL: huggingface/transformers@v5.23.0 src/transformers/models/qwen2_vl/processing_qwen2_vl.py
# (image_token "<|image_pad|>", video_token "<|video_pad|>") and the Qwen2-VL chat template's
# "<|vision_start|><|image_pad|><|vision_end|>" per image part.
MEDIA_PLACEHOLDERS: dict[str, tuple[str, str, str, str]] = {
    # model_type: (image token, video token, vision start, vision end)
    "qwen2_vl": ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
    "qwen2_5_vl": ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
    "qwen3_vl": ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"),
}
# Qwen3-VL's processor replaces <|video_pad|> by "<{t:.1f} seconds><|vision_start|>...<|vision_end|>" per temporal
# patch (transformers@v5.23.0 models/qwen3_vl/processing_qwen3_vl.py:75-103), which is uniembed's layout
# (backbones/qwen3_vl.py media_placeholder); outer markers around the pad would nest, so the template writes none.
PROCESSOR_WRAPS_VIDEO_FRAMES = ("qwen3_vl",)

# Part types of an OpenAI / vLLM chat request and of sentence-transformers' structured messages.
_IMAGE_PARTS = ["image", "image_url"]
_VIDEO_PARTS = ["video", "video_url"]


def _q(text: str | None) -> str:
    """A Python string as a Jinja string literal (JSON escaping is valid Jinja)."""
    return json.dumps(text or "")


def embedding_chat_template(config: EmbeddingConfig, model_type: str, chat: ChatFormat) -> str:
    """The Jinja source that renders vLLM/sentence-transformers messages as uniembed's prompt for `config`."""
    if model_type not in MEDIA_PLACEHOLDERS:
        raise ConfigError(f"no chat template export for model_type {model_type!r}; "
                          f"exportable families: {sorted(MEDIA_PLACEHOLDERS)}")
    image_token, video_token, start, end = MEDIA_PLACEHOLDERS[model_type]
    if not config.vision_markers:
        start = end = ""
    video_start, video_end = start, end
    if model_type in PROCESSOR_WRAPS_VIDEO_FRAMES:
        video_start = video_end = ""
    placement = config.instruction_placement
    lines = [
        "{#- uniembed embedding template (profile: " + (config.profile or "none") + "): system = instruction, "
        "user = text / image(_url) / video(_url) parts -#}",
        "{%- set ns = namespace(system='', text='', images=0, videos=0) -%}",
        "{%- for message in messages -%}",
        "{%- set parts = [{'type': 'text', 'text': message.content}] if message.content is string "
        "else message.content -%}",
        "{%- for part in parts -%}",
        "{%- if message.role == 'system' and part.type == 'text' -%}{%- set ns.system = ns.system + part.text -%}",
        "{%- elif message.role == 'user' and part.type == 'text' -%}{%- set ns.text = ns.text + part.text -%}",
        f"{{%- elif message.role == 'user' and part.type in {_IMAGE_PARTS} -%}}{{%- set ns.images = ns.images + 1 -%}}",
        f"{{%- elif message.role == 'user' and part.type in {_VIDEO_PARTS} -%}}{{%- set ns.videos = ns.videos + 1 -%}}",
        "{%- endif -%}",
        "{%- endfor -%}",
        "{%- endfor -%}",
        # templates.build_segments: where the instruction goes
        f"{{%- set system = ns.system if (ns.system and {_q(placement)} == 'system') else {_q(config.system_prompt)} -%}}",
        f"{{%- set instruction = ns.system if {_q(placement)} == 'prefix' else '' -%}}",
        # templates.content_segments: instruction, separator, text, suffix; media before or after the words
        "{%- set words = '' -%}",
        "{%- if instruction -%}{%- set words = instruction + "
        f"({_q(config.instruction_separator)} if ns.text else '') -%}}{{%- endif -%}}",
        "{%- set words = words + ns.text -%}",
        f"{{%- if instruction -%}}{{%- set words = words + {_q(config.instruction_suffix)} -%}}{{%- endif -%}}",
        f"{{%- set media = ({_q(start + image_token + end)} * ns.images) + "
        f"({_q(video_start + video_token + video_end)} * ns.videos) -%}}",
        f"{{%- set sep = {_q(config.media_separator)} if (media and words) else '' -%}}",
        "{%- set user = (media + sep + words) if " + ("true" if config.images_first else "false")
        + " else (words + sep + media) -%}",
    ]
    if config.summary_suffix:
        lines += _summary_lines(config)
    if config.chat_template:
        lines += [
            f"{{%- if system -%}}{{{{- {_q(chat.system_start)} + system + {_q(chat.turn_end)} -}}}}{{%- endif -%}}",
            f"{{{{- {_q(chat.user_start)} + user + {_q(chat.turn_end)} + {_q(chat.assistant_start)} "
            f"+ {_q(config.assistant_text)} -}}}}",
        ]
    else:
        lines.append("{{- user -}}")
    if config.pooling == "eos" and config.eos_token:
        lines.append(f"{{{{- {_q(config.eos_token)} -}}}}")
    return "\n".join(lines) + "\n"


def _summary_lines(config: EmbeddingConfig) -> list[str]:
    """templates.summary_suffix in Jinja: the one-word summary prompt naming the item's modalities."""
    lines = [
        "{%- set has_text = (ns.text or instruction) -%}",
        "{%- set present = (['sentence'] if has_text else []) + (['image'] if ns.images else []) "
        "+ (['video'] if ns.videos else []) -%}",
    ]
    if config.summary_modalities == "main":
        lines.append("{%- set noun = 'video' if ns.videos else ('image' if ns.images else 'sentence') -%}")
    else:
        if config.summary_modalities == "all_media_first":
            lines.append("{%- if present and present[0] == 'sentence' -%}"
                         "{%- set present = present[1:] + present[:1] -%}{%- endif -%}")
        lines.append("{%- set noun = present | join(' and ') if present else 'sentence' -%}")
    head, _, tail = config.summary_template.partition("{modality}")
    lines.append(f"{{%- set user = user + {_q(head)} + noun + {_q(tail)} -%}}")
    return lines
