"""Which media sources a request may name, and decoding them into pixels before they reach the model.

By default a request carries its media inline (data URIs or bare base64). Local paths are accepted
only inside one directory (`--allow-local-files DIR`): the real path, with every symlink resolved,
must lie in that directory, so neither `..` nor a symlink can reach outside it. Remote URLs are
fetched only with `--allow-remote-media`, from public addresses (or those `--remote-allow` names),
within a size and a time limit.

Media are CHECKED here, not decoded: image headers and video containers are read (size, frame count)
and charged to the request's decoded-pixel budget, and the item keeps the file bytes; the pixels are
decoded one item at a time in the model thread when the item's batch runs. So a request costs its
compressed bytes until then, a broken image fails only its request with the item's index, and a
request that times out or is abandoned is never decoded.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..frames import FramePolicy
from ..media import (MediaLimits, decode_data_uri, frame_files, image_size, is_data_uri, is_remote_url, probe_video,
                     sample_indices)
from .remote import fetch_remote

_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_MIN_BASE64_CHARS = 16


class PixelBudget:
    """The decoded pixels one request may cost (images, and the video frames the policy samples)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, pixels: int) -> None:
        self.spent += pixels
        if self.spent > self.limit:
            raise InputError(f"the request's media decode to more than {self.limit} pixels",
                             fix="send fewer or smaller images / videos, or split the request")


NOT_AVAILABLE = "file not available"


class MediaPolicy:
    """Turns the media strings of a request into PIL images (and frame lists), under the server's policy."""

    def __init__(self, limits: MediaLimits, local_root: str | Path | None = None, allow_remote: bool = False,
                 max_media_bytes: int | None = None, remote_timeout_s: float | None = None,
                 video: FramePolicy = FramePolicy(), remote_allow: tuple[str, ...] = (),
                 max_request_pixels: int | None = None, max_text_chars: int = 65536) -> None:
        changes: dict[str, Any] = {"allow_remote": allow_remote, "remote_allow": tuple(remote_allow)}
        if max_media_bytes is not None:
            changes["max_file_bytes"] = min(limits.max_file_bytes, max_media_bytes)
        if remote_timeout_s is not None:
            changes["remote_timeout_s"] = remote_timeout_s
        self.limits = dataclasses.replace(limits, **changes)
        self.local_root = None if local_root is None else Path(os.path.realpath(local_root))
        self.video_policy = video
        self.max_request_pixels = max_request_pixels or 4 * self.limits.max_pixels
        self.max_text_chars = max_text_chars

    def budget(self) -> PixelBudget:
        return PixelBudget(self.max_request_pixels)

    # ---- sources to bytes ------------------------------------------------------------------------
    def _inline_bytes(self, text: str) -> bytes | None:
        """Bytes of a data URI or bare base64 string; None when the string is neither."""
        if is_data_uri(text):
            self._check_encoded_size(text)
            return decode_data_uri(text)
        if len(text) >= _MIN_BASE64_CHARS and _BASE64.match(text):
            self._check_encoded_size(text)
            try:
                return base64.b64decode(text, validate=False)
            except (binascii.Error, ValueError):
                return None
        return None

    def _check_encoded_size(self, text: str) -> None:
        if len(text) * 3 // 4 > self.limits.max_file_bytes + 3:
            raise InputError(f"inline medium of about {len(text) * 3 // 4} bytes is over the limit of "
                             f"{self.limits.max_file_bytes} bytes", fix="send a smaller file")

    def names_local_file(self, text: str) -> bool:
        """True when local files are allowed and `text` names an existing entry (checked, not trusted)."""
        if self.local_root is None or is_data_uri(text) or is_remote_url(text):
            return False
        candidate = Path(text[len("file://"):] if text.startswith("file://") else text)
        try:
            return os.path.lexists(candidate if candidate.is_absolute() else self.local_root / candidate)
        except (OSError, ValueError):
            return False

    def local_path(self, text: str) -> Path:
        """The real path of a local source, refused unless it lies inside the allowed directory."""
        if self.local_root is None:
            raise InputError("local file paths are not accepted by this server",
                             fix="send the file inline as a data URI (data:image/png;base64,...) or start the "
                                 "server with --allow-local-files DIR")
        if text.startswith("file://"):
            text = text[len("file://"):]
        try:
            candidate = Path(text)
            if not candidate.is_absolute():
                candidate = self.local_root / candidate
            real = Path(os.path.realpath(candidate))
            inside = real == self.local_root or self.local_root in real.parents
            available = inside and real.exists()
        except (OSError, ValueError):  # NUL bytes, over-long names, ...
            available = False
        if not available:  # one text for outside, missing and invalid: errors tell nothing of the disk
            raise InputError(NOT_AVAILABLE, fix="name a file inside the --allow-local-files directory "
                                                "(no '..', no symlinks out)")
        return real

    def source_bytes(self, source: Any) -> bytes:
        """Raw bytes of one image or video source string, or an InputError saying why not."""
        if not isinstance(source, str):
            raise InputError(f"a media source must be a string (data URI, base64 or URL), got {type(source).__name__}")
        if not source:
            raise InputError("empty media source")
        if is_remote_url(source):
            if not self.limits.allow_remote:
                raise InputError("remote URLs are not fetched by this server",
                                 fix="send the file inline as a data URI or start the server with --allow-remote-media")
            return fetch_remote(source, self.limits)
        if not self.names_local_file(source):
            inline = self._inline_bytes(source)
            if inline is not None:
                return inline
        if "://" in source and not source.startswith("file://"):
            raise InputError(f"unsupported URL scheme in '{source[:40]}'", fix="use a data URI, http(s) or a path")
        path = self.local_path(source)
        try:
            if not path.is_file() or path.stat().st_size > self.limits.max_file_bytes:
                raise OSError
            return path.read_bytes()
        except OSError:
            raise InputError(NOT_AVAILABLE if not path.is_file() else
                             f"file over the limit of {self.limits.max_file_bytes} bytes") from None

    # ---- checking (decoding happens in the model thread) -----------------------------------------
    def image(self, source: Any, budget: PixelBudget | None = None) -> bytes:
        """The bytes of one image source, its header checked (format, pixel limit) and charged to `budget`."""
        data = self.source_bytes(source)
        width, height = image_size(data, self.limits)
        if budget is not None:
            budget.spend(width * height)
        return data

    def video(self, source: Any, budget: PixelBudget | None = None) -> bytes | list[Any]:
        """A video as its file bytes or a list of frame sources (bytes / real paths), checked and charged."""
        if isinstance(source, list):
            if not source:
                raise InputError("video frame list is empty")
            if len(source) > self.limits.max_frames:
                raise InputError(f"{len(source)} frames, over the limit of {self.limits.max_frames}",
                                 fix="send fewer frames")
            return [self.image(frame, budget) for frame in source]
        if isinstance(source, str) and self.names_local_file(source):
            path = self.local_path(source)
            if path.is_dir():
                files = frame_files(path)
                if not files:
                    raise InputError(f"frame folder '{source}' holds no images")
                frames = [files[i] for i in sample_indices(len(files), self.limits.max_frames)]
                for frame in frames:
                    self.image(str(frame), budget)
                return frames
        data = self.source_bytes(source)
        info = probe_video(data, self.limits)
        if budget is not None:
            policy = self.video_policy
            budget.spend(policy.frame_count(info.frames, info.rate, self.limits.max_frames)
                         * info.width * info.height)
        return data

