"""Parity probe: does a deployed embeddings server embed like uniembed's own model?

`probe_server(embedder, url)` sends a fixed probe set (text, image, text+image, video; each with and without
an instruction) to any OpenAI- or vLLM-compatible `/v1/embeddings` server and compares each answer with
`embedder.encode` of the same item. A row whose cosine is >= `MATCH_THRESHOLD` (0.999) is a match. Why 0.999:
the same weights, prompt and pooling differ by float rounding only (the tiny models in bfloat16 against float32:
cosine >= 0.99998 on every probe row), while a wrong profile moves it well below (tiny:qwen3_vl without its
profile against a server under qwen3-vl-embedding: 0.95-0.98; tiny under vlm2vec-v1 against the library
defaults: -0.06-0.91). A large checkpoint served in bf16 may drift more than the tiny ones: `--threshold` lowers
the bar.

Request forms: the plain text is sent once in the OpenAI form (`{"input": [text]}`) and once, like every other
row, in vLLM's chat-style form (`{"messages": [system = instruction, user = parts]}`; the shape of vLLM's
`EmbeddingChatRequest`, see uniembed/serving/items.py `_message_fields`). A server may embed the two forms of the same
text differently (vLLM applies the chat template to `messages` only), which is exactly what the probe shows.
Media travel as base64 data URIs (`image_url` / `video_url` parts), so the server needs no file or network
access. Only the standard library talks HTTP here.
"""
from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError
from .inputs import Item

MATCH_THRESHOLD = 0.999
PROBE_TEXT = "A red square above a blue bar on a white page."
PROBE_INSTRUCTION = "Retrieve the image or video that matches the description."


class ProbeError(ConfigError):
    """The server named by `--server` cannot be probed: unreachable, an HTTP error, or a malformed answer."""


@dataclass(frozen=True)
class ProbeCase:
    """One probe row: an item's content and the request form it is sent in ("input" or "messages")."""

    name: str
    form: str
    text: str | None = None
    image: bytes | None = None
    video: bytes | None = None
    instruction: str | None = None

    def item(self) -> Item:
        """The same content as a uniembed `Item` (what the local model embeds)."""
        return Item(text=self.text, image=self.image, video=self.video, instruction=self.instruction)

    def body(self, model: str | None) -> dict[str, Any]:
        """The JSON request body for this row."""
        body: dict[str, Any] = {"model": model} if model else {}
        if self.form == "input":
            body["input"] = [self.text]
            return body
        parts: list[dict[str, Any]] = []
        if self.video is not None:
            parts.append({"type": "video_url", "video_url": {"url": _data_uri(self.video, "video/mp4")}})
        if self.image is not None:
            parts.append({"type": "image_url", "image_url": {"url": _data_uri(self.image, "image/png")}})
        if self.text is not None:
            parts.append({"type": "text", "text": self.text})
        messages = [{"role": "system", "content": self.instruction}] if self.instruction else []
        body["messages"] = messages + [{"role": "user", "content": parts}]
        return body


@dataclass(frozen=True)
class ProbeResult:
    """One row's outcome: the cosine of the server's vector with uniembed's."""

    case: ProbeCase
    cosine: float
    threshold: float = MATCH_THRESHOLD

    @property
    def matches(self) -> bool:
        return self.cosine >= self.threshold


def probe_cases() -> list[ProbeCase]:
    """The fixed probe set: text (in both request forms), image, text+image and video, each with and without
    the instruction. The media are drawn here, so every run sends the same bytes."""
    image, video = probe_image(), probe_video()
    contents = [("text", {"text": PROBE_TEXT}), ("image", {"image": image}),
                ("text+image", {"text": PROBE_TEXT, "image": image}), ("video", {"video": video})]
    cases = [ProbeCase("text", "input", text=PROBE_TEXT)]
    for name, fields in contents:
        cases.append(ProbeCase(name, "messages", **fields))
        cases.append(ProbeCase(f"{name} + instruction", "messages", instruction=PROBE_INSTRUCTION, **fields))
    return cases


def probe_image(size: tuple[int, int] = (96, 72)) -> bytes:
    """A PNG with a red square above a blue bar (what PROBE_TEXT describes)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle([width // 3, height // 8, 2 * width // 3, height // 2], fill=(220, 30, 30))
    draw.rectangle([width // 8, 5 * height // 8, 7 * width // 8, 3 * height // 4], fill=(30, 60, 220))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def probe_video(frames: int = 8, size: int = 64, fps: int = 4) -> bytes:
    """An MP4 (MPEG-4 part 2, PyAV) of a red square moving across a white frame above a blue bar."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            array = np.full((size, size, 3), 255, dtype=np.uint8)
            left = index * (size - 16) // max(frames - 1, 1)
            array[8:24, left:left + 16] = (220, 30, 30)
            array[40:48, 8:size - 8] = (30, 60, 220)
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def probe_server(embedder: Any, server: str, api_key: str | None = None, served_model: str | None = None,
                 threshold: float = MATCH_THRESHOLD, timeout_s: float = 120.0,
                 cases: Sequence[ProbeCase] | None = None) -> tuple[str | None, list[ProbeResult]]:
    """Embed the probe set on `server` and locally with `embedder`; returns (the model name sent, the rows).

    Raises `ProbeError` when the server cannot be reached, answers an HTTP error or a malformed body, or
    returns vectors whose dimension is not `embedder.dimension`."""
    base = server_base(server)
    model = served_model or served_model_name(base, api_key, timeout_s)
    cases = list(cases) if cases is not None else probe_cases()
    local = np.asarray(embedder.encode([case.item() for case in cases], batch_size=4), dtype=np.float64)
    results = []
    for case, expected in zip(cases, local):
        answer = _post(base + "/v1/embeddings", case.body(model), api_key, timeout_s, case.name)
        vector = _embedding(answer, case)
        if vector.shape[0] != expected.shape[0]:
            raise ProbeError(f"probe row '{case.name}': the server's vector has dimension {vector.shape[0]}, "
                             f"the model's has {expected.shape[0]}; is {base} serving another model, or "
                             "truncating dimensions (Matryoshka)?")
        results.append(ProbeResult(case, _cosine(vector, expected), threshold))
    return model, results


def server_base(server: str) -> str:
    """`http://host:port` from a server URL given with or without a trailing `/v1`."""
    if not server.startswith(("http://", "https://")):
        raise ProbeError(f"--server {server!r} is not an http(s) URL (e.g. http://127.0.0.1:8000)")
    base = server.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


def served_model_name(base: str, api_key: str | None = None, timeout_s: float = 30.0) -> str | None:
    """The first model id of `GET /v1/models` (OpenAI, vLLM and uniembed servers list it); None if absent."""
    listing = _request(urllib.request.Request(base + "/v1/models", headers=_headers(api_key)), timeout_s,
                       "GET /v1/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict) and isinstance(data[0].get("id"), str):
        return data[0]["id"]
    return None


def format_report(server: str, model: str | None, results: Sequence[ProbeResult]) -> str:
    """The probe's table: one line per row with its request form, cosine and verdict, then a summary."""
    threshold = results[0].threshold if results else MATCH_THRESHOLD
    width = max((len(result.case.name) for result in results), default=4)
    lines = [f"probe of {server} (model {model or '-'}): cosine with uniembed's vectors, match at >= {threshold}",
             f"{'item':<{width}}  {'form':<8}  {'cosine':>9}  verdict"]
    for result in results:
        verdict = "match" if result.matches else "DIFFERS"
        lines.append(f"{result.case.name:<{width}}  {result.case.form:<8}  {result.cosine:9.6f}  {verdict}")
    matched = sum(result.matches for result in results)
    lines.append(f"{matched}/{len(results)} rows match" + ("" if matched == len(results) else
                 "; the server embeds differently (check its chat template, instruction placement, pooling and "
                 "pixel bounds against the profile)"))
    return "\n".join(lines)


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _post(url: str, body: dict[str, Any], api_key: str | None, timeout_s: float, what: str) -> Any:
    data = json.dumps(body).encode()
    return _request(urllib.request.Request(url, data=data, headers=_headers(api_key), method="POST"), timeout_s,
                    f"probe row '{what}'")


def _request(request: urllib.request.Request, timeout_s: float, what: str) -> Any:
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode(errors="replace")
        hint = " (fix: pass --api-key)" if exc.code == 401 else ""
        raise ProbeError(f"{what}: {request.full_url} answered HTTP {exc.code}: {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProbeError(f"{what}: cannot reach {request.full_url} ({reason}); is the server running, and is "
                         "--server its address?") from None
    try:
        return json.loads(payload)
    except ValueError:
        raise ProbeError(f"{what}: {request.full_url} answered something that is not JSON: {payload[:200]!r}") from None


def _embedding(answer: Any, case: ProbeCase) -> np.ndarray:
    try:
        rows = answer["data"]
        if len(rows) != 1:
            raise ValueError(f"{len(rows)} embeddings for one item")
        vector = np.asarray(rows[0]["embedding"], dtype=np.float64)
        if vector.ndim != 1 or not np.all(np.isfinite(vector)):
            raise ValueError("not a finite float vector")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ProbeError(f"probe row '{case.name}': not an embeddings answer ({exc}): {str(answer)[:200]}") from None
    return vector


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
