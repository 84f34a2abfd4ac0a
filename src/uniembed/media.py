"""Decoding images, videos and PDF pages from every source users hand us, behind safety limits.

Sources are decoded lazily (an `Item` only stores them), so a batch of paths costs nothing until encoded.
Every failure raises `InputError` naming the file; the caller adds the item's position.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError

ImageSource = Union[Image.Image, str, os.PathLike, bytes]
VideoSource = Union[str, os.PathLike, Sequence[ImageSource]]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
_DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S)


@dataclass(frozen=True)
class MediaLimits:
    """Safety limits applied to every decoded medium.

    `max_pixels` guards against decompression bombs (checked from the header, before decoding);
    `max_file_bytes` against huge uploads; `max_frames` bounds frames decoded per video.
    Remote URLs are fetched only when `allow_remote` is set.
    """

    max_pixels: int = 50_000_000
    max_file_bytes: int = 256 * 1024 * 1024
    max_frames: int = 256
    allow_remote: bool = False
    remote_timeout_s: float = 10.0


DEFAULT_LIMITS = MediaLimits()


def describe_source(source: Any) -> str:
    """A short printable name for a media source (paths as given, in-memory data by type)."""
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        return text if len(text) < 120 else text[:60] + "...(truncated)"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.size[0]}x{source.size[1]}>"
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def is_data_uri(text: str) -> bool:
    return text.startswith("data:")


def is_remote_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def decode_data_uri(uri: str) -> bytes:
    match = _DATA_URI.match(uri)
    if match is None:
        raise InputError("malformed data URI", fix="use data:<mime>;base64,<payload>")
    payload = match.group("data")
    if match.group("b64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"invalid base64 in data URI ({exc})", fix="base64-encode the file bytes") from exc
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def fetch_remote(url: str, limits: MediaLimits) -> bytes:
    """Download a remote medium, only when explicitly allowed, within size and time limits."""
    if not limits.allow_remote:
        raise InputError(
            f"remote URL '{describe_source(url)}' not fetched",
            fix="download it yourself, pass a data URI, or enable remote media explicitly",
        )
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=limits.remote_timeout_s) as response:  # noqa: S310
            data = response.read(limits.max_file_bytes + 1)
    except Exception as exc:  # network errors of every kind
        raise InputError(f"could not fetch '{url}': {exc}", path=url) from exc
    if len(data) > limits.max_file_bytes:
        raise InputError(f"remote file larger than {limits.max_file_bytes} bytes", path=url)
    return data


def _read_file(path: Path, limits: MediaLimits) -> bytes:
    if not path.exists():
        raise InputError("file not found", path=path, fix="check the path (relative paths resolve against the data root)")
    if not path.is_file():
        raise InputError("not a regular file", path=path)
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(
            f"file is {size} bytes, over the limit of {limits.max_file_bytes}",
            path=path,
            fix="shrink the file or raise MediaLimits.max_file_bytes",
        )
    if size == 0:
        raise InputError("file is empty", path=path)
    return path.read_bytes()


def source_bytes(source: str | os.PathLike | bytes, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[bytes, str | None]:
    """Raw bytes of a path, data URI, URL or bytes source, and the path to name in errors."""
    if isinstance(source, (bytes, bytearray)):
        if len(source) > limits.max_file_bytes:
            raise InputError(f"{len(source)} bytes, over the limit of {limits.max_file_bytes}")
        return bytes(source), None
    text = os.fspath(source)
    if is_data_uri(text):
        data = decode_data_uri(text)
        if len(data) > limits.max_file_bytes:
            raise InputError(f"data URI holds {len(data)} bytes, over the limit of {limits.max_file_bytes}")
        return data, None
    if is_remote_url(text):
        return fetch_remote(text, limits), text
    return _read_file(Path(text), limits), text


def _check_pixels(width: int, height: int, limits: MediaLimits, where: str | None) -> None:
    if width * height > limits.max_pixels:
        raise InputError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_pixels}"
            " (possible decompression bomb)",
            path=where,
            fix="downscale the image or raise MediaLimits.max_pixels",
        )
    if width == 0 or height == 0:
        raise InputError(f"image has zero size ({width}x{height})", path=where)


def load_image(source: ImageSource, limits: MediaLimits = DEFAULT_LIMITS) -> Image.Image:
    """Decode any image source to an RGB PIL image, checking size limits before decoding pixels."""
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, limits, None)
        return source if source.mode == "RGB" else source.convert("RGB")
    if not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        raise InputError(f"unsupported image source of type {type(source).__name__}", fix="pass a PIL image, a path, bytes or a data URI")
    data, where = source_bytes(source, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixels(image.width, image.height, limits, where)
            image.load()
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"image rejected as a decompression bomb ({exc})", path=where) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot decode image ({exc.__class__.__name__}: {exc})", path=where,
                         fix="re-export the file as PNG or JPEG") from exc
    return image.convert("RGB")


def uniform_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread uniformly (linspace, endpoints included) over `total` frames."""
    if total <= 0:
        return []
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return [int(round(x)) for x in np.linspace(0, total - 1, count)]


def frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (frame_2 before frame_10)."""
    def natural_key(path: Path) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)


def load_video(
    source: VideoSource,
    num_frames: int | None = 8,
    fps: float | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
    max_source_frames: int | None = None,
) -> list[Image.Image]:
    """Decode a video to a list of RGB frames, sampled uniformly by count (`num_frames`) or rate (`fps`).

    Sources: a video file (PyAV), a folder of frame images (MMEB-V2 layout), or a list of images.
    `max_source_frames` first restricts a frame folder or list to that many uniformly spaced frames
    (MMEB-V2 samples 8 from at most 64).
    """
    if isinstance(source, (list, tuple)):
        return _sample_frame_list(list(source), num_frames, fps, limits, max_source_frames, None)
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"unsupported video source of type {type(source).__name__}",
                         fix="pass a video file, a folder of frames or a list of images")
    path = Path(os.fspath(source))
    if not path.exists():
        raise InputError("video not found", path=path, fix="check the path (a video file or a folder of frames)")
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise InputError("frame folder holds no images", path=path)
        return _sample_frame_list(files, num_frames, fps, limits, max_source_frames, str(path))
    return _decode_video_file(path, num_frames, fps, limits)


def _sample_frame_list(frames: list, num_frames, fps, limits, max_source_frames, where) -> list[Image.Image]:
    if not frames:
        raise InputError("video has no frames", path=where)
    if max_source_frames:
        frames = [frames[i] for i in uniform_indices(len(frames), max_source_frames)]
    count = num_frames if num_frames else len(frames)
    if fps and not num_frames:
        count = len(frames)  # a frame list carries no timestamps: keep all, within the limit
    count = min(count, limits.max_frames)
    return [load_image(frames[i], limits) for i in uniform_indices(len(frames), count)]


def _decode_video_file(path: Path, num_frames: int | None, fps: float | None, limits: MediaLimits) -> list[Image.Image]:
    import av

    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise InputError(f"video is {size} bytes, over the limit of {limits.max_file_bytes}", path=path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError("file has no video stream", path=path)
            stream = container.streams.video[0]
            _check_pixels(stream.codec_context.width, stream.codec_context.height, limits, str(path))
            decoded: list[tuple[float, Image.Image]] = []
            for frame in container.decode(stream):
                seconds = float(frame.time) if frame.time is not None else len(decoded) / float(stream.average_rate or 25)
                decoded.append((seconds, frame))
                if len(decoded) > limits.max_frames * 8 and num_frames:
                    break
            if not decoded:
                raise InputError("video decodes to no frames", path=path)
            if fps:
                duration = decoded[-1][0] - decoded[0][0]
                count = max(1, int(duration * fps) + 1)
                if num_frames:
                    count = min(count, num_frames)
            else:
                count = num_frames or len(decoded)
            count = min(count, limits.max_frames)
            picks = uniform_indices(len(decoded), count)
            return [decoded[i][1].to_image().convert("RGB") for i in picks]
    except InputError:
        raise
    except Exception as exc:  # PyAV raises many error types for corrupt input
        raise InputError(f"cannot decode video ({exc.__class__.__name__}: {exc})", path=path,
                         fix="re-encode it (e.g. H.264 MP4) or pass a folder of frames") from exc


def pdf_pages(path: str | os.PathLike, dpi: float = 144, pages: Sequence[int] | None = None,
              limits: MediaLimits = DEFAULT_LIMITS) -> list[Image.Image]:
    """Render PDF pages to RGB images (a visual document page is an image). `pages` are 0-based."""
    return list(iter_pdf_pages(path, dpi, pages, limits))


def iter_pdf_pages(path: str | os.PathLike, dpi: float = 144, pages: Sequence[int] | None = None,
                   limits: MediaLimits = DEFAULT_LIMITS) -> Iterator[Image.Image]:
    """`pdf_pages` as a stream: one page rendered at a time, so memory does not grow with the page count."""
    with _open_pdf(path, limits) as (document, where):
        indices = list(range(len(document))) if pages is None else list(pages)
        if not indices:
            raise InputError("PDF has no pages", path=where)
        for index in indices:
            if not 0 <= index < len(document):
                raise InputError(f"page {index} out of range (PDF has {len(document)} pages)", path=where)
            page = document[index]
            width, height = page.get_size()
            scale = dpi / 72.0
            _check_pixels(int(width * scale), int(height * scale), limits, where)
            bitmap = page.render(scale=scale)
            image = bitmap.to_pil().convert("RGB")
            bitmap.close()
            page.close()
            yield image


def pdf_page_count(path: str | os.PathLike, limits: MediaLimits = DEFAULT_LIMITS) -> int:
    """Number of pages of a PDF, without rendering any (an empty PDF is an error)."""
    with _open_pdf(path, limits) as (document, where):
        if not len(document):
            raise InputError("PDF has no pages", path=where)
        return len(document)


@contextlib.contextmanager
def _open_pdf(path: str | os.PathLike, limits: MediaLimits):
    import pypdfium2 as pdfium

    data, where = source_bytes(path, limits)
    try:
        document = pdfium.PdfDocument(data)
    except Exception as exc:
        raise InputError(f"cannot open PDF ({exc})", path=where, fix="check the file is a valid PDF") from exc
    try:
        yield document, where
    finally:
        document.close()
