"""`ServerConfig`: every limit and policy of the embeddings server in one validated place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass
class ServerConfig:
    """Options of `uniembed serve` (the CLI flags map one to one onto these fields).

    Batching: `max_batch_tokens` bounds a model batch by its padded size (items x longest estimated
    length, text plus visual tokens), `max_batch_items` by its row count; a batch is sent to the model
    when full or `max_wait_ms` after its first item arrived. `batching=False` never merges requests.
    Items estimated at `long_item_tokens` tokens or more run in a lane of their own (batches of long items only,
    in a second model thread), so short requests never wait behind their forward pass; None: one lane.
    Limits: `max_items_per_request` (400 above), `max_body_bytes` (413), `max_concurrency` requests in
    flight (429 beyond; a slot is taken once the body has arrived, so slow uploads hold none),
    `request_timeout_s` (504). Bodies: the body must arrive within `body_timeout_s` plus one second per
    `min_body_rate` bytes received, else 408 and the connection is closed. Memory: `max_request_pixels`
    decoded pixels per request (images plus sampled video frames, read from headers; 400 above),
    `max_text_chars` per text (cut before tokenising; None: 32 x the model's max_length, at least 65,536).
    Media: data URIs / base64 always; local files only under `allow_local_files`; remote URLs only with
    `allow_remote_media`, from public addresses or those in `remote_allow` (CIDRs or host names),
    within `max_media_bytes`, `remote_timeout_s` and `max_redirects`.
    Width: `dimensions` cuts every vector (embeddings without their own `dimensions`, and search queries) to
    its first D coordinates, re-normalised (Matryoshka); None = the model's full dimension.
    Quantised output: `ranges` names the 2 x D ranges.npy the int8/uint8 `encoding_format` quantises on
    (`uniembed encode --precision int8` writes it); without it those formats are refused.
    """

    served_model_name: str = "uniembed"
    api_key: str | None = None
    batching: bool = True
    max_batch_tokens: int = 16384
    max_batch_items: int = 64
    max_wait_ms: float = 5.0
    long_item_tokens: int | None = 512
    max_items_per_request: int = 256
    max_body_bytes: int = 64 * 1024 * 1024
    max_concurrency: int = 64
    request_timeout_s: float = 60.0
    body_timeout_s: float = 10.0
    min_body_rate: int = 64 * 1024
    max_request_pixels: int = 200_000_000
    max_text_chars: int | None = None
    allow_local_files: str | Path | None = None
    allow_remote_media: bool = False
    max_media_bytes: int = 32 * 1024 * 1024
    remote_timeout_s: float = 10.0
    remote_allow: tuple[str, ...] = ()
    max_redirects: int = 3
    default_top_k: int = 10
    max_top_k: int = 1000
    dimensions: int | None = None
    ranges: str | Path | None = None  # ranges.npy for the int8/uint8 encoding_format (serving/formats.py)

    def __post_init__(self) -> None:
        positive = ("max_batch_tokens", "max_batch_items", "max_items_per_request", "max_body_bytes",
                    "max_concurrency", "max_media_bytes", "max_top_k", "min_body_rate", "max_request_pixels")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or min(self.request_timeout_s, self.remote_timeout_s, self.body_timeout_s) <= 0:
            raise ConfigError("max_wait_ms must be >= 0 and the timeouts > 0")
        if self.long_item_tokens is not None and self.long_item_tokens < 1:
            raise ConfigError(f"long_item_tokens must be at least 1 (or None: one lane), got {self.long_item_tokens}")
        if self.max_text_chars is not None and self.max_text_chars < 1:
            raise ConfigError(f"max_text_chars must be at least 1, got {self.max_text_chars}")
        if self.dimensions is not None and self.dimensions < 1:
            raise ConfigError(f"--dimensions must be at least 1, got {self.dimensions}")
        if self.max_redirects < 0:
            raise ConfigError("max_redirects must be >= 0")
        import ipaddress

        self.remote_allow = tuple(str(entry).strip() for entry in self.remote_allow if str(entry).strip())
        for entry in self.remote_allow:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not entry.replace("-", "").replace(".", "").replace("_", "").isalnum():
                    raise ConfigError(f"--remote-allow entry '{entry}' is neither a CIDR nor a host name") from None
        if self.allow_local_files is not None:
            root = Path(self.allow_local_files)
            if not root.is_dir():
                raise ConfigError(f"--allow-local-files '{root}' is not a directory")
            self.allow_local_files = root.resolve()
