"""Decoding images, videos and PDF pages from every source users hand us, behind safety limits.

Sources are decoded lazily (an `Item` only stores them), so a batch of paths costs nothing until encoded.
Every failure raises `InputError` naming the file; the caller adds the item's position. No network here: a
remote URL is refused (the server fetches them, `serving/remote.py`).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

from PIL import Image, UnidentifiedImageError

from .errors import InputError
from .frames import FramePolicy, uniform_indices
from .resize import pre_resized

log = logging.getLogger(__name__)

ImageSource = Union[Image.Image, str, os.PathLike, bytes]
VideoSource = Union[str, os.PathLike, bytes, Sequence[ImageSource]]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
_DATA_URI = re.compile(r"^data:(?P<mime>[\w/+.-]*)(?P<params>(;[\w=.-]+)*?)(?P<b64>;base64)?,(?P<data>.*)$", re.S)


@dataclass(frozen=True)
class MediaLimits:
    """Safety limits applied to every decoded medium.

    `max_pixels` guards against decompression bombs (checked from the header, before decoding);
    `max_file_bytes` against huge uploads; `max_frames` bounds frames kept per video and
    `max_video_frames` the frames a video may hold at all (every frame is decoded, only the sampled
    ones are kept). The library reads no network: a remote URL is refused. The server's fetcher
    (`serving/remote.py`) fetches when `allow_remote` is set, only from public addresses unless
    `remote_allow` (CIDRs or host names) names them, within `remote_timeout_s` (the whole fetch) and
    `max_redirects`.
    """

    max_pixels: int = 50_000_000
    max_file_bytes: int = 256 * 1024 * 1024
    max_frames: int = 256
    max_video_frames: int = 100_000
    allow_remote: bool = False
    remote_timeout_s: float = 10.0
    remote_allow: tuple[str, ...] = ()
    max_redirects: int = 3


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
        raise InputError(f"remote URL '{describe_source(text)}' not fetched",
                         fix="download it yourself or pass a data URI (the library reads no network; the server "
                             "fetches with --allow-remote-media)")
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
    with _opened_image(data, where, keep=True) as image:
        _check_pixels(image.width, image.height, limits, where)
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")  # no second full-size copy


def image_size(data: bytes, limits: MediaLimits = DEFAULT_LIMITS, where: str | None = None) -> tuple[int, int]:
    """Width and height from an image's header (no pixels decoded), refused over `max_pixels`."""
    with _opened_image(data, where) as image:
        _check_pixels(image.width, image.height, limits, where)
        return image.width, image.height


def header_size(source: ImageSource) -> tuple[int, int] | None:
    """(width, height) of an image source read from its header alone, for token estimates; None when that is
    not cheap or not possible (a remote URL, a data URI, an unreadable file: decoding reports those)."""
    if isinstance(source, Image.Image):
        return source.size
    if isinstance(source, (bytes, bytearray)):
        stream: Any = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        stream = os.fspath(source)
        if is_remote_url(stream) or is_data_uri(stream):
            return None
    else:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                return image.size
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


@contextlib.contextmanager
def _opened_image(data: bytes, where: str | None, keep: bool = False) -> Iterator[Image.Image]:
    """A lazily opened image (closed after the block unless `keep`); decoding errors (here or in the
    caller's block) become InputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            try:
                yield image
            finally:
                if not keep:
                    image.close()
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"image rejected as a decompression bomb ({exc})", path=where) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot decode image ({exc.__class__.__name__}: {exc})", path=where,
                         fix="re-export the file as PNG or JPEG") from exc


def frame_files(folder: Path) -> list[Path]:
    """Image files of a frame folder in natural order (frame_2 before frame_10)."""
    def natural_key(path: Path) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=natural_key)


class SampledFrames(list):
    """The frames a video decoded to, saying what was decoded: `frames_read` of `frames_expected`
    (from the container's metadata) and the `indices` kept."""

    frames_read: int = 0
    frames_expected: int = 0
    indices: Sequence[int] = ()


# container format names PyAV (FFmpeg) reports for each video extension; used to refuse a file that is
# not what its extension says (a PNG renamed .mp4 opens as "png_pipe")
_CONTAINERS = {".mp4": "mov", ".m4v": "mov", ".mov": "mov", ".mkv": "matroska", ".webm": "matroska",
               ".avi": "avi", ".mpg": "mpeg", ".mpeg": "mpeg"}


def load_video(
    source: VideoSource,
    policy: FramePolicy = FramePolicy(),
    limits: MediaLimits = DEFAULT_LIMITS,
) -> list[Image.Image]:
    """Decode a video to a list of RGB frames, sampled as `policy` says (by count, or by rate for a file).

    Sources: a video file or its bytes (PyAV), a folder of frame images (MMEB-V2 layout), or a list of
    images. `policy.max_source_frames` first restricts a frame folder or list to that many uniformly spaced
    frames (MMEB-V2 samples 8 from at most 64); `policy.rounding` is `uniform_indices`' rounding of the final
    pick. A video file is decoded as a stream that keeps only the sampled frames (memory: the kept frames,
    whatever the length); one that decodes to fewer frames than its container declares is refused, whatever
    the container. Frames decoded from a file keep their time in `info["seconds"]` (Qwen3-VL's timestamps).
    """
    if isinstance(source, (bytes, bytearray)):
        return _decode_video_file(bytes(source), policy, limits)
    if isinstance(source, (list, tuple)):
        return _sample_frame_list(list(source), policy, limits, None)
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
        return _sample_frame_list(files, policy, limits, str(path))
    return _decode_video_file(path, policy, limits)


def _sample_frame_list(frames: list, policy: FramePolicy, limits: MediaLimits, where: str | None) -> list[Image.Image]:
    if not frames:
        raise InputError("video has no frames", path=where)
    if policy.max_source_frames:
        frames = [frames[i] for i in sample_indices(len(frames), policy.max_source_frames)]
    # a frame list carries no timestamps: `fps` does not thin it; all frames when no count is set
    count = min(policy.num_frames or len(frames), limits.max_frames)
    return [pre_resized(load_image(frames[i], limits), policy.list_resize)
            for i in sample_indices(len(frames), count, policy.rounding)]


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's container declares, read without decoding a frame."""

    width: int
    height: int
    frames: int  # declared, or estimated from duration x frame rate, or counted packets
    rate: float  # frames per second


def probe_video(source: Path | bytes, limits: MediaLimits = DEFAULT_LIMITS) -> VideoInfo:
    """A video's size and frame count from its container (no decoding), under the limits."""
    with _open_video(source) as (container, stream, where):
        return _video_info(container, stream, where, limits)


@contextlib.contextmanager
def _open_video(source: Path | bytes) -> Iterator[tuple[Any, Any, str | None]]:
    import av

    where = None if isinstance(source, bytes) else str(source)
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size == 0:
        raise InputError("file is empty", path=where, fix="pass a video file with content")
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source))
    except Exception as exc:  # PyAV raises many error types for what is not a video
        raise InputError(f"cannot decode video ({exc.__class__.__name__}: {exc})", path=where,
                         fix="re-encode it (e.g. H.264 MP4) or pass a folder of frames") from None
    try:
        names = set(container.format.name.split(","))
        expected = _CONTAINERS.get(Path(where).suffix.lower()) if where else None
        if any(name.endswith("_pipe") or name == "image2" for name in names) or (expected and expected not in names):
            what = f"the {Path(where).suffix.lower()} video its extension says" if expected else "a video"
            raise InputError(f"file is not {what}: its content is '{container.format.name}'", path=where,
                             fix="pass a real video file (an image belongs in 'image')")
        if not container.streams.video:
            raise InputError("file has no video stream", path=where)
        yield container, container.streams.video[0], where
    finally:
        container.close()


def _video_info(container: Any, stream: Any, where: str | None, limits: MediaLimits) -> VideoInfo:
    width, height = stream.codec_context.width, stream.codec_context.height
    _check_pixels(width, height, limits, where)
    rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
    seconds = 0.0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / 1_000_000
    frames = int(stream.frames or 0) or int(round(seconds * rate))
    if frames <= 0:  # nothing declared: count the packets (demuxing, not decoding)
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        container.seek(0)
    if frames > limits.max_video_frames:
        raise InputError(f"video holds {frames} frames, over the limit of {limits.max_video_frames}", path=where,
                         fix="trim the video or pass a folder of sampled frames")
    return VideoInfo(width, height, frames, rate)


def _decode_video_file(source: Path | bytes, policy: FramePolicy, limits: MediaLimits) -> SampledFrames:
    """Stream-decode a video, converting and keeping only the frames the policy samples."""
    if isinstance(source, bytes):
        if len(source) > limits.max_file_bytes:
            raise InputError(f"video is {len(source)} bytes, over the limit of {limits.max_file_bytes}")
    elif source.stat().st_size > limits.max_file_bytes:
        raise InputError(f"video is {source.stat().st_size} bytes, over the limit of {limits.max_file_bytes}",
                         path=source)
    with _open_video(source) as (container, stream, where):
        info = _video_info(container, stream, where, limits)
        picks = sample_indices(info.frames, policy.frame_count(info.frames, info.rate, limits.max_frames),
                               policy.file_rounding)
        kept, read = _keep_frames(container, stream, set(picks), where, info.rate)
    # a decoder may drop a frame or two at the ends; more missing means a cut or corrupt file
    if read < info.frames - max(1, info.frames // 50):
        raise InputError(f"video decodes to {read} of the {info.frames} frames its container declares "
                         "(truncated or corrupt)", path=where, fix="re-encode the complete file (e.g. H.264 MP4)")
    if read == 0:
        raise InputError("video decodes to no frames", path=where)
    if len(kept) < len(picks):  # slightly fewer frames than declared: sample again from those read
        picks = sample_indices(read, len(picks), policy.file_rounding)
        with _open_video(source) as (container, stream, where):
            kept, read = _keep_frames(container, stream, set(picks), where, info.rate)
    frames = SampledFrames(kept[i] for i in picks if i in kept)
    frames.frames_read, frames.frames_expected, frames.indices = read, info.frames, picks
    log.debug("video %s: decoded %d of %d declared frames, kept %s", where or "<bytes>", read, info.frames, picks)
    return frames


def _keep_frames(container: Any, stream: Any, wanted: set[int], where: str | None,
                 rate: float) -> tuple[dict[int, Image.Image], int]:
    """Decode every frame, converting and keeping only those in `wanted` (each with its time in
    `info["seconds"]`, which Qwen3-VL writes into the prompt); also the count decoded."""
    kept: dict[int, Image.Image] = {}
    read = 0
    try:
        for frame in container.decode(stream):
            if read in wanted:
                image = frame.to_image().convert("RGB")
                image.info["seconds"] = float(frame.time) if frame.time is not None else read / rate
                kept[read] = image
            read += 1
    except Exception as exc:  # a corrupt packet ends the stream: the caller judges by the frames read
        log.info("video %s: decoding stopped after %d frames (%s)", where or "<bytes>", read, exc)
    return kept, read


def sample_indices(total: int, count: int, rounding: str = "nearest") -> list[int]:
    """The one place video decoding picks frame indices (keeps `uniform_indices`' call in one spot)."""
    return uniform_indices(total, count, rounding)


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
