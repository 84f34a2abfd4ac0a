"""Request JSON -> `Item`s: plain strings, item objects and OpenAI-style content-part lists.

Each element of `input` is ONE item and gives ONE embedding:
  "a string"                                   -> text
  {"text", "image", "images", "video", "instruction"}  -> any combination
  [{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": ...}},
   {"type": "video_url", "video_url": {"url": ... or [frame urls]}}]   -> one item from its parts
`messages` (vLLM's chat-style request) is ONE item: the system message's text is its instruction, the one
user message's content (a string or the parts above) is the item. A list of such conversations (the batched
form mteb's `OpenAIAPIEncodeWrapper` sends: `messages=[[{"role": "user", ...}], ...]`, mteb 2.26.24
mteb/models/openai_wrappers.py:680-690) gives one item per conversation.
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
MESSAGE_FIELDS = {"role", "content"}


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


def parse_message_batch(raw: Any, policy: MediaPolicy, max_items: int) -> list[Item]:
    """`messages` -> its items: one conversation gives one item, a list of conversations one item each (sharing
    one decoded-pixel budget; an error names the conversation as the item position)."""
    if not (isinstance(raw, list) and raw and all(isinstance(conversation, list) for conversation in raw)):
        return [parse_messages(raw, policy)]
    if len(raw) > max_items:
        raise InputError(f"{len(raw)} conversations in one request, over this server's limit of {max_items}",
                         fix="split the request into smaller ones")
    budget = policy.budget()
    items = []
    for position, conversation in enumerate(raw):
        try:
            items.append(parse_messages(conversation, policy, budget))
        except InputError as exc:
            raise exc.at(position) from None
    return items


def parse_messages(raw: Any, policy: MediaPolicy, budget: PixelBudget | None = None) -> Item:
    """vLLM's chat-style embedding request -> ONE item: the system message is the instruction, the parts of
    the one user message are the item (text, image_url, video_url; media checked by the policy)."""
    item = _decode_media(_message_fields(raw), policy, budget or policy.budget())
    if item.is_empty():
        raise InputError("empty item: the user message has no text, image or video", fix="give the item content")
    return item


def _message_fields(raw: Any) -> dict[str, Any]:
    """The item fields of a `messages` list; an error names the message or part (`messages[1].content[2]`).

    The shape is vLLM's `EmbeddingChatRequest.messages` (vllm-project/vllm@ff8d577a972bbcd9bc37b196343f5f9a86609ccb
    vllm/entrypoints/pooling/embed/protocol.py:59; `messages: list[ChatCompletionMessageParam]` from
    `ChatRequestMixin`, vllm@020638a6b026e4d96f34e6e7ed12c3390fbf7416 vllm/entrypoints/pooling/base/protocol.py),
    with content parts as OpenAI's and vLLM's
    `ChatCompletionContentPartVideoParam` (vllm/entrypoints/chat_utils.py): `{"type": "text", "text"}`,
    `{"type": "image_url", "image_url": {"url"}}`, `{"type": "video_url", "video_url": {"url"}}`.
    """
    if not isinstance(raw, list) or not raw:
        raise InputError("messages must be a non-empty list of {role, content} objects")
    instruction: str | None = None
    system_seen = False
    fields: dict[str, Any] | None = None
    for number, message in enumerate(raw):
        where = f"messages[{number}]"
        if not isinstance(message, dict) or set(message) - MESSAGE_FIELDS or "content" not in message:
            raise InputError(f"{where} must be an object with 'role' and 'content' (and nothing else)")
        role, content = message.get("role"), message["content"]
        if role == "system":
            if system_seen:
                raise InputError(f"{where}: a second system message", fix="give the instruction in one system message")
            system_seen = True
            parts = _content_part_fields([{"type": "text", "text": content}] if isinstance(content, str) else
                                         _parts(content, where), f"{where}.content[{{}}]")
            if set(parts) - {"text"}:
                raise InputError(f"{where}: a system message holds text only (the instruction)")
            instruction = parts.get("text") or None
        elif role == "user":
            if fields is not None:
                raise InputError(f"{where}: a second user message; one request embeds one item",
                                 fix="put all parts of the item in one user message, or send items with `input`")
            fields = {"text": content} if isinstance(content, str) else _content_part_fields(
                _parts(content, where), f"{where}.content[{{}}]")
        else:
            raise InputError(f"{where}: role {role!r} is not supported; use 'system' (the instruction) and 'user' "
                             "(the item)")
    if fields is None:
        raise InputError("messages hold no user message", fix="put the item in a message with role 'user'")
    if instruction is not None:
        fields["instruction"] = instruction
    return fields


def _parts(content: Any, where: str) -> list:
    if not isinstance(content, list):
        raise InputError(f"{where}.content must be a string or a list of content parts, got {_kind(content)}")
    return content


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


def _content_part_fields(parts: list, where: str = "content part {}") -> dict[str, Any]:
    """Text, images and one video from a list of OpenAI-style parts; `where` names a part in errors."""
    texts: list[str] = []
    images: list[str] = []
    video: Any = None
    for number, part in enumerate(parts):
        label = where.format(number)
        if not isinstance(part, dict) or part.get("type") not in PART_TYPES:
            kind = f" '{part['type']}'" if isinstance(part, dict) and isinstance(part.get("type"), str) else ""
            raise InputError(f"{label}: unknown part type{kind}; a part must be an object with type one of "
                             f"{list(PART_TYPES)}")
        kind = part["type"]
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise InputError(f"{label}: 'text' must be a string")
            texts.append(part["text"])
            continue
        url = _part_url(part, kind, label)
        if kind == "image_url":
            if not isinstance(url, str):
                raise InputError(f"{label}: image_url.url must be a string")
            images.append(url)
        else:
            if video is not None:
                raise InputError(f"{label}: an item holds at most one video")
            if not _is_video_source(url):
                raise InputError(f"{label}: video_url.url must be a string or a list of frame URLs")
            video = url
    fields: dict[str, Any] = {}
    if texts:
        fields["text"] = "\n".join(texts)
    if images:
        fields["images"] = images
    if video is not None:
        fields["video"] = video
    return fields


def _part_url(part: dict, kind: str, label: str) -> Any:
    value = part.get(kind)
    if isinstance(value, dict):
        value = value.get("url")
    if value is None:
        raise InputError(f"{label}: missing {kind}.url")
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
