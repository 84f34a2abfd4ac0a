"""`Item`: one input to embed (text, image(s), video, instruction, or any combination)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from stat import S_ISDIR
from typing import Any, Iterable, Mapping

from PIL import Image

from .errors import InputError
from .frames import FramePolicy
from .media import (
    DEFAULT_LIMITS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    ImageSource,
    MediaLimits,
    VideoSource,
    describe_source,
    load_image,
    load_video,
)

TEXT, IMAGE, VIDEO = 1, 2, 4
MODALITY_NAMES = {TEXT: "text", IMAGE: "image", VIDEO: "video"}


def modality_name(mask: int) -> str:
    """'text', 'image', 'text+image', ... for a modality bitmask."""
    names = [name for bit, name in MODALITY_NAMES.items() if mask & bit]
    return "+".join(names) if names else "empty"


@dataclass(frozen=True)
class Item:
    """One input that gives one embedding.

    Any of `text`, `image` (or several `images`) and `video` may be combined; `instruction` is a task
    prompt that templates place separately from the text (e.g. "Retrieve an image that matches the caption").
    Media are stored as sources and decoded only when the item is encoded. Frozen, so its `content_key` is
    computed once (mining and eval ask for it several times per item): make a new Item for new content.
    """

    text: str | None = None
    image: ImageSource | None = None
    images: list[ImageSource] | None = None
    video: VideoSource | None = None
    instruction: str | None = None

    # unhashable, as before it was frozen: its fields may hold lists and PIL images; key sets by `content_key()`
    __hash__ = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.text is not None and not isinstance(self.text, str):
            raise InputError(f"text must be a string, got {type(self.text).__name__}")
        if self.instruction is not None and not isinstance(self.instruction, str):
            raise InputError(f"instruction must be a string, got {type(self.instruction).__name__}")
        if self.images is not None and not isinstance(self.images, (list, tuple)):
            raise InputError("images must be a list of image sources", fix="use image= for a single image")

    @property
    def image_sources(self) -> list[ImageSource]:
        """All image sources in order (`image` first, then `images`)."""
        sources = [] if self.image is None else [self.image]
        return sources + list(self.images or [])

    @property
    def modality(self) -> int:
        """Bitmask: text=1, image=2, video=4 (text+image = 3 is its own modality)."""
        mask = TEXT if self.text and self.text.strip() else 0
        if self.image_sources:
            mask |= IMAGE
        if self.video is not None:
            mask |= VIDEO
        return mask

    @property
    def modality_name(self) -> str:
        return modality_name(self.modality)

    def is_empty(self) -> bool:
        return self.modality == 0

    def with_instruction(self, instruction: str | None) -> "Item":
        """A copy with `instruction` set (when given), leaving this item unchanged."""
        if instruction is None:
            return self
        return Item(self.text, self.image, self.images, self.video, instruction)

    def load_images(self, limits: MediaLimits = DEFAULT_LIMITS) -> list[Image.Image]:
        return [load_image(source, limits) for source in self.image_sources]

    def load_video(self, policy: FramePolicy = FramePolicy(),
                   limits: MediaLimits = DEFAULT_LIMITS) -> list[Image.Image] | None:
        """The video's frames as `policy` samples them (None when the item has no video)."""
        if self.video is None:
            return None
        return load_video(self.video, policy, limits)

    def content_key(self) -> str:
        """A stable hash of everything that determines the embedding (content and instruction).

        Paths are keyed by resolved path, size and modification time, so an edited file is re-encoded (by a new
        Item: the key is computed once per Item and kept); in-memory images by their pixels. Used for
        de-duplication and the on-disk embedding cache.
        """
        key = self.__dict__.get("_content_key")
        if key is None:
            key = self._compute_content_key()
            object.__setattr__(self, "_content_key", key)  # a cache, not a field: eq, repr and replace ignore it
        return key

    def _compute_content_key(self) -> str:
        digest = hashlib.sha256()
        for name in ("text", "instruction"):
            value = getattr(self, name)
            digest.update(f"{name}={value!r}\n".encode())
        for source in self.image_sources:
            digest.update(b"image=" + _source_fingerprint(source) + b"\n")
        if self.video is not None:
            if isinstance(self.video, (list, tuple)):
                for frame in self.video:
                    digest.update(b"frame=" + _source_fingerprint(frame) + b"\n")
            else:
                digest.update(b"video=" + _source_fingerprint(self.video) + b"\n")
        return digest.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (media as paths/strings only; in-memory media are described)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "images":
                value = [_jsonable_source(v) for v in value]
            elif f.name in ("image", "video"):
                value = [_jsonable_source(v) for v in value] if isinstance(value, (list, tuple)) else _jsonable_source(value)
            out[f.name] = value
        return out

    def describe(self) -> str:
        parts = []
        if self.instruction:
            parts.append(f"instruction={self.instruction[:40]!r}")
        if self.text:
            parts.append(f"text={self.text[:60]!r}")
        for source in self.image_sources:
            parts.append(f"image={describe_source(source)}")
        if self.video is not None:
            parts.append(f"video={describe_source(self.video)}")
        return "Item(" + ", ".join(parts) + ")"


FINGERPRINT_CACHE_SIZE = 500_000  # remembered path fingerprints (then the memo starts over)
_path_fingerprints: dict[tuple[str, int, int, int], bytes] = {}


def _source_fingerprint(source: Any) -> bytes:
    """Bytes that change when the source's content may have: pixels, bytes, or a path's identity and stat."""
    if isinstance(source, Image.Image):
        return b"pil:" + hashlib.sha256(source.tobytes() + repr((source.mode, source.size)).encode()).digest()
    if isinstance(source, (bytes, bytearray)):
        return b"bytes:" + hashlib.sha256(source).digest()
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.startswith("data:"):
            return b"uri:" + hashlib.sha256(text.encode()).digest()
        try:
            stat = os.stat(text)
        except OSError:
            return f"path:{text}".encode()
        # one stat per reference; resolving the path (a stat per component) and listing a folder happen once
        # per distinct file version: an eval task refers to the same image from thousands of candidate lists
        memo = (text, stat.st_size, stat.st_mtime_ns, stat.st_mode)
        fingerprint = _path_fingerprints.get(memo)
        if fingerprint is None:
            fingerprint = _path_fingerprint(Path(text), stat)
            if len(_path_fingerprints) >= FINGERPRINT_CACHE_SIZE:
                _path_fingerprints.clear()
            _path_fingerprints[memo] = fingerprint
        return fingerprint
    return f"obj:{type(source).__name__}:{id(source)}".encode()


def _path_fingerprint(path: Path, stat: os.stat_result) -> bytes:
    try:
        if S_ISDIR(stat.st_mode):
            listing = sorted(p.name for p in path.iterdir())
            return f"dir:{path.resolve()}:{hashlib.sha256(repr(listing).encode()).hexdigest()}".encode()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    except OSError:
        return f"path:{os.fspath(path)}".encode()


def _jsonable_source(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return describe_source(source)


_ITEM_KEYS = {f.name for f in fields(Item)}


def as_item(value: Any, position: int | None = None) -> Item:
    """Turn what users pass into an `Item`: str -> text, PIL image or image path -> image,
    video path -> video, dict -> Item(**dict), Item -> itself. Raises `InputError` naming `position`."""
    try:
        if isinstance(value, Item):
            item = value
        elif isinstance(value, str):
            item = Item(text=value)
        elif isinstance(value, Image.Image):
            item = Item(image=value)
        elif isinstance(value, os.PathLike):
            suffix = Path(value).suffix.lower()
            if suffix in VIDEO_EXTENSIONS or Path(value).is_dir():
                item = Item(video=value)
            elif suffix in IMAGE_EXTENSIONS or suffix == "":
                item = Item(image=value)
            else:
                raise InputError(f"unsupported file type '{suffix}' for path {os.fspath(value)}",
                                 fix="pass images (png, jpg, ...) or videos (mp4, ...); expand PDFs with media.pdf_pages")
        elif isinstance(value, Mapping):
            unknown = set(value) - _ITEM_KEYS - {"id"}
            if unknown:
                raise InputError(f"unknown item field(s) {sorted(unknown)}", fix=f"use only {sorted(_ITEM_KEYS)}")
            item = Item(**{k: v for k, v in value.items() if k in _ITEM_KEYS})
        else:
            raise InputError(f"unsupported input type {type(value).__name__}",
                             fix="pass a str, a PIL image, a pathlib.Path, a dict or an uniembed.Item")
    except InputError as exc:
        raise exc.at(position)
    except TypeError as exc:
        raise InputError(f"invalid item ({exc})", position=position) from exc
    if item.is_empty():
        raise InputError("empty item: no text, image or video", position=position,
                         fix="drop the item or give it content")
    return item


def as_items(values: Any) -> list[Item]:
    """A batch of inputs as Items. A single input (str, image, dict, Item) is a batch of one."""
    if isinstance(values, (str, Image.Image, Mapping, Item, os.PathLike)):
        values = [values]
    if not isinstance(values, Iterable):
        raise InputError(f"expected an input or a list of inputs, got {type(values).__name__}")
    return [as_item(value, position) for position, value in enumerate(values)]
