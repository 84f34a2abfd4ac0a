"""Which media sources a request may name, and decoding them into pixels before they reach the model.

By default a request carries its media inline (data URIs or bare base64). Local paths are accepted
only inside one directory (`--allow-local-files DIR`): the real path, with every symlink resolved,
must lie in that directory, so neither `..` nor a symlink can reach outside it. Remote URLs are
fetched only with `--allow-remote-media`, within a size and a time limit. Decoding here (not in the
model thread) means one request's broken image fails only that request, with the item's index.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import InputError
from ..media import (MediaLimits, decode_data_uri, describe_source, fetch_remote, frame_files, is_data_uri, is_remote_url, load_image,
                     load_video, uniform_indices)

_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_MIN_BASE64_CHARS = 16


@dataclasses.dataclass(frozen=True)
class VideoPolicy:
    """The model's frame policy, applied when a request's video file is decoded."""

    num_frames: int | None = 8
    fps: float | None = None


class MediaPolicy:
    """Turns the media strings of a request into PIL images (and frame lists), under the server's policy."""

    def __init__(self, limits: MediaLimits, local_root: str | Path | None = None, allow_remote: bool = False,
                 max_media_bytes: int | None = None, remote_timeout_s: float | None = None,
                 video: VideoPolicy = VideoPolicy()) -> None:
        changes: dict[str, Any] = {"allow_remote": allow_remote}
        if max_media_bytes is not None:
            changes["max_file_bytes"] = min(limits.max_file_bytes, max_media_bytes)
        if remote_timeout_s is not None:
            changes["remote_timeout_s"] = remote_timeout_s
        self.limits = dataclasses.replace(limits, **changes)
        self.local_root = None if local_root is None else Path(os.path.realpath(local_root))
        self.video_policy = video

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
            exists = inside and real.exists()
        except (OSError, ValueError) as exc:  # NUL bytes, over-long names, ...
            raise InputError(f"invalid path ({exc.__class__.__name__}: {exc})") from None
        if not inside:
            raise InputError(f"path '{describe_source(text)}' resolves outside the allowed directory",
                             fix="name files inside the --allow-local-files directory (no '..', no symlinks out)")
        if not exists:
            raise InputError(f"file '{describe_source(text)}' not found in the allowed directory")
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
            if not path.is_file():
                raise InputError(f"'{describe_source(source)}' is not a file")
            size = path.stat().st_size
            if size > self.limits.max_file_bytes:
                raise InputError(f"file '{describe_source(source)}' is {size} bytes, over the limit of "
                                 f"{self.limits.max_file_bytes}")
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read '{describe_source(source)}' ({exc.strerror or exc})") from None

    # ---- decoding --------------------------------------------------------------------------------
    def image(self, source: Any) -> Image.Image:
        data = self.source_bytes(source)
        return load_image(data, self.limits)

    def video(self, source: Any) -> list[Image.Image]:
        """A video as frames: a list of frame images, a video file (inline or allowed), or an allowed frame folder."""
        if isinstance(source, list):
            if not source:
                raise InputError("video frame list is empty")
            if len(source) > self.limits.max_frames:
                raise InputError(f"{len(source)} frames, over the limit of {self.limits.max_frames}",
                                 fix="send fewer frames")
            return [self.image(frame) for frame in source]
        if isinstance(source, str) and self.names_local_file(source):
            path = self.local_path(source)
            if path.is_dir():
                files = frame_files(path)
                frames = [files[i] for i in uniform_indices(len(files), self.limits.max_frames)]
                if not frames:
                    raise InputError(f"frame folder '{source}' holds no images")
                return [self.image(str(frame)) for frame in frames]
        return self._video_file(self.source_bytes(source))

    def _video_file(self, data: bytes) -> list[Image.Image]:
        """Decode video bytes via a temporary file (PyAV reads files), sampling frames by the model's policy."""
        with tempfile.TemporaryDirectory(prefix="uniembed-video-") as folder:
            path = Path(folder) / "upload.mp4"
            path.write_bytes(data)
            try:
                policy = self.video_policy
                return load_video(path, num_frames=policy.num_frames, fps=policy.fps, limits=self.limits)
            except InputError as exc:
                raise InputError(exc.problem, fix=exc.fix) from None
