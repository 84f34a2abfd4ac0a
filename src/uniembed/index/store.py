"""The on-disk embedding-shard format shared by `uniembed encode`, `uniembed index build` and mining.

Layout of an embeddings directory:
    DIR/shard-00000.npy, DIR/shard-00001.npy, ...   float32 N_i x D arrays (L2-normalised rows)
    DIR/manifest.jsonl                               one row per embedding: {"id": str, "shard": int, "row": int}
    DIR/info.json or DIR/model.json                  {"model_id": Embedder.model_id, ...}: the model that
                                                     encoded (recorded by `index build`, checked by `search`)
    DIR/metadata.jsonl                               optional {"id": str, ...} per item (the input row's other
                                                     fields), copied beside the index and returned with hits
The model id may also come from a `model_id` field on the manifest's first row.
Rows are appended shard by shard; a shard's manifest rows are written only after its .npy file is
complete, so an interrupted writer leaves a readable prefix (and `ShardWriter(resume=True)` continues it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..jsonl import iter_json_lines

MANIFEST = "manifest.jsonl"
INFO_FILE = "info.json"  # written by `uniembed encode`
MODEL_FILE = "model.json"
METADATA_FILE = "metadata.jsonl"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


@dataclass
class ManifestRow:
    id: str
    shard: int
    row: int


class ShardWriter:
    """Appends (ids, embeddings) batches into shards of at most `shard_size` rows."""

    def __init__(self, directory: str | os.PathLike, shard_size: int = 100_000, resume: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self._ids: list[str] = []
        self._rows: list[np.ndarray] = []
        self._pending = 0
        existing = read_manifest(self.directory) if (self.directory / MANIFEST).exists() else []
        if existing and resume:
            _drop_cut_tail(self.directory / MANIFEST, existing)
        if existing and not resume:
            raise InputError("embeddings directory already holds a manifest", path=self.directory,
                             fix="choose an empty --out directory or resume")
        self.written_ids = {row.id for row in existing}
        self._next_shard = 1 + max((row.shard for row in existing), default=-1)
        self.dimension: int | None = None

    def add(self, ids: Sequence[str], embeddings: np.ndarray) -> None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(ids) != embeddings.shape[0]:
            raise InputError(f"{len(ids)} ids for embeddings of shape {embeddings.shape}")
        if self.dimension is None:
            self.dimension = embeddings.shape[1]
        elif embeddings.shape[1] != self.dimension:
            raise InputError(f"embedding dimension {embeddings.shape[1]} differs from earlier {self.dimension}")
        self._ids.extend(str(i) for i in ids)
        self._rows.append(embeddings)
        self._pending += len(ids)
        while self._pending >= self.shard_size:
            self._flush(self.shard_size)

    def close(self) -> None:
        if self._pending:
            self._flush(self._pending)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flush(self, count: int) -> None:
        block = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
        shard, rest = block[:count], block[count:]
        ids, self._ids = self._ids[:count], self._ids[count:]
        self._rows = [rest] if len(rest) else []
        self._pending -= count
        index = self._next_shard
        self._next_shard += 1
        tmp = self.directory / (shard_name(index) + ".tmp")
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(shard))
        os.replace(tmp, self.directory / shard_name(index))
        with open(self.directory / MANIFEST, "a", encoding="utf-8") as handle:
            for row, item_id in enumerate(ids):
                handle.write(json.dumps({"id": item_id, "shard": index, "row": row}) + "\n")


def _drop_cut_tail(path: Path, rows: list[ManifestRow]) -> None:
    """Rewrite the manifest without a line a killed writer left half-written, so appends start clean."""
    if path.read_bytes().endswith(b"\n"):
        return
    text = "".join(json.dumps({"id": r.id, "shard": r.shard, "row": r.row}) + "\n" for r in rows)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_embeddings(directory: str | os.PathLike, ids: Sequence[str], embeddings: np.ndarray,
                     shard_size: int = 100_000) -> None:
    """Write a whole (ids, embeddings) set in the shard format."""
    with ShardWriter(directory, shard_size=shard_size) as writer:
        writer.add(ids, embeddings)


def read_manifest(directory: str | os.PathLike) -> list[ManifestRow]:
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise InputError("no manifest.jsonl", path=directory,
                         fix="point --embeddings at a directory written by `uniembed encode`")
    rows = []
    for number, data in iter_json_lines(path, allow_cut_last_line=True):
        try:
            rows.append(ManifestRow(str(data["id"]), int(data["shard"]), int(data["row"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"bad manifest row ({exc})", path=path, row=number,
                             fix='each line must be {"id": ..., "shard": int, "row": int}') from exc
    return rows


def embeddings_model_id(directory: str | os.PathLike) -> str | None:
    """The id of the model that encoded `directory` (see the module docstring), or None when none is recorded."""
    directory = Path(directory)
    for name in (INFO_FILE, MODEL_FILE):
        path = directory / name
        if path.exists():
            try:
                value = json.loads(path.read_text(encoding="utf-8")).get("model_id")
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as exc:
                raise InputError(f"cannot read the model id ({exc})", path=path,
                                 fix='the file must be a JSON object {"model_id": ..., "model_path": ...}') from exc
            if value:
                return str(value)
    manifest = directory / MANIFEST
    if manifest.exists():
        with open(manifest, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        try:
            row = json.loads(first) if first.strip() else {}
        except json.JSONDecodeError:
            return None  # read_manifest reports a bad manifest with its line
        if isinstance(row, dict) and row.get("model_id"):
            return str(row["model_id"])
    return None


def iter_shards(directory: str | os.PathLike, mmap: bool = True) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield (ids, embeddings) per shard in shard order; embeddings are memory-mapped by default."""
    directory = Path(directory)
    by_shard: dict[int, list[ManifestRow]] = {}
    for row in read_manifest(directory):
        by_shard.setdefault(row.shard, []).append(row)
    for shard in sorted(by_shard):
        path = directory / shard_name(shard)
        if not path.exists():
            raise InputError("shard named in manifest.jsonl is missing", path=path, fix="re-run `uniembed encode`")
        array = np.load(path, mmap_mode="r" if mmap else None)
        rows = sorted(by_shard[shard], key=lambda r: r.row)
        if rows[-1].row >= len(array):
            raise InputError(f"manifest names row {rows[-1].row} but the shard has {len(array)} rows", path=path)
        positions = [r.row for r in rows]
        if positions != list(range(len(array))):
            array = array[positions]
        yield [r.id for r in rows], array


def read_embeddings(directory: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """All ids and embeddings of a directory, in manifest shard order (loads everything into memory)."""
    ids: list[str] = []
    blocks = []
    for shard_ids, block in iter_shards(directory, mmap=False):
        ids.extend(shard_ids)
        blocks.append(np.asarray(block, dtype=np.float32))
    if not blocks:
        raise InputError("embeddings directory is empty", path=directory)
    return ids, np.concatenate(blocks)
