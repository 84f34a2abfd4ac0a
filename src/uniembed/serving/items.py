"""Request JSON -> `Item`s: plain strings, item objects and OpenAI-style content-part lists.

Each element of `input` is ONE item and gives ONE embedding:
  "a string"                                   -> text
  {"text", "image", "images", "video", "instruction"}  -> any combination
  [{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": ...}},
   {"type": "video_url", "video_url": {"url": ... or [frame urls]}}]   -> one item from its parts
Media strings go through the `MediaPolicy` (checked and charged to the request's pixel budget, decoded
later in the model thread); texts and instructions longer than the policy's `max_text_chars` are cut
before anything tokenises them (the model truncates at `max_length` tokens anyway); every error names
the item's position.
"""
from __future__ import annotations

from typing import Any

from ..errors import InputError
from ..inputs import Item
from .media_policy import MediaPolicy, PixelBudget

ITEM_FIELDS = ("text", "image", "images", "video", "instruction")
PART_TYPES = ("text", "image_url", "video_url")


def split_input(raw: Any, max_items: int) -> list[Any]:
    """The request's `input` as a list of raw items (a single string or item is a batch of one)."""
    if isinstance(raw, (str, dict)):
        values = [raw]
    elif isinstance(raw, list):
        values = raw
    else:
        raise InputError(f"input must be a string or a list of items, got {type(raw).__name__}")
    if not values:
        raise InputError("input is empty", fix="send at least one item")
    if len(values) > max_items:
        raise InputError(f"{len(values)} items in one request, over this server's limit of {max_items}",
                         fix="split the request into smaller ones")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise InputError("token-id input is not supported", fix="send text, not token ids")
    return values


def parse_item(raw: Any, policy: MediaPolicy, position: int | None = None, budget: PixelBudget | None = None) -> Item:
    """One raw item -> an `Item` whose media are checked file bytes (decoded when its batch runs)."""
    try:
        if isinstance(raw, str):
            fields: dict[str, Any] = {"text": raw}
        elif isinstance(raw, dict):
            fields = _object_fields(raw)
        elif isinstance(raw, list):
            fields = _content_part_fields(raw)
        else:
            raise InputError(f"an item must be a string, an object or a list of content parts, got {_kind(raw)}")
        item = _decode_media(fields, policy, budget or policy.budget())
    except InputError as exc:
        raise exc.at(position) from None
    if item.is_empty():
        raise InputError("empty item: no text, image or video", position=position, fix="give the item content")
    return item


def parse_items(raw: Any, policy: MediaPolicy, max_items: int) -> list[Item]:
    """All items of one request, sharing one decoded-pixel budget."""
    budget = policy.budget()
    return [parse_item(value, policy, position, budget) for position, value in enumerate(split_input(raw, max_items))]


def _object_fields(raw: dict) -> dict[str, Any]:
    if "type" in raw:
        raise InputError("a bare content part is not an item",
                         fix='wrap an item\'s parts in a list: input=[[{"type": "text", ...}, '
                             '{"type": "image_url", ...}]]')
    unknown = sorted(set(raw) - set(ITEM_FIELDS))
    if unknown:
        raise InputError(f"unknown item field(s) {unknown}", fix=f"use only {list(ITEM_FIELDS)}")
    fields = {key: value for key, value in raw.items() if value is not None}
    for key in ("text", "instruction", "image"):
        if key in fields and not isinstance(fields[key], str):
            raise InputError(f"'{key}' must be a string, got {_kind(fields[key])}")
    if "images" in fields:
        if not isinstance(fields["images"], list) or not all(isinstance(v, str) for v in fields["images"]):
            raise InputError("'images' must be a list of strings (data URIs)")
    if "video" in fields and not _is_video_source(fields["video"]):
        raise InputError("'video' must be a string (data URI of a video file) or a list of frame images")
    return fields


def _content_part_fields(parts: list) -> dict[str, Any]:
    texts: list[str] = []
    images: list[str] = []
    video: Any = None
    for number, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            raise InputError(f"content part {number} must be an object with type one of {list(PART_TYPES)}")
        kind = part["type"]
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InputError(f"content part {number}: 'text' must be a string")
            texts.append(part["text"])
            continue
        url = _part_url(part, kind, number)
        if kind == "image_url":
            if not isinstance(url, str):
                raise InputError(f"content part {number}: image_url.url must be a string")
            images.append(url)
        else:
            if video is not None:
                raise InputError(f"content part {number}: an item holds at most one video")
            if not _is_video_source(url):
                raise InputError(f"content part {number}: video_url.url must be a string or a list of frame URLs")
            video = url
    fields: dict[str, Any] = {}
    if texts:
        fields["text"] = "\n".join(texts)
    if images:
        fields["images"] = images
    if video is not None:
        fields["video"] = video
    return fields


def _part_url(part: dict, kind: str, number: int) -> Any:
    value = part.get(kind)
    if isinstance(value, dict):
        value = value.get("url")
    if value is None:
        raise InputError(f"content part {number}: missing {kind}.url")
    return value


def _is_video_source(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _decode_media(fields: dict[str, Any], policy: MediaPolicy, budget: PixelBudget) -> Item:
    images = []
    if "image" in fields:
        images.append(fields["image"])
    images.extend(fields.get("images", []))
    checked = [_labelled(policy.image, source, budget, f"image {n}") for n, source in enumerate(images)]
    video = _labelled(policy.video, fields["video"], budget, "video") if "video" in fields else None
    return Item(text=_capped(fields.get("text"), policy), images=checked or None, video=video,
                instruction=_capped(fields.get("instruction"), policy))


def _capped(text: str | None, policy: MediaPolicy) -> str | None:
    return text if text is None or len(text) <= policy.max_text_chars else text[:policy.max_text_chars]


def _labelled(check, source: Any, budget: PixelBudget, label: str) -> Any:
    try:
        return check(source, budget)
    except InputError as exc:
        raise InputError(f"{label}: {exc.problem}", fix=exc.fix) from None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)
