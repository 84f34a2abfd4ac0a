"""The on-disk embedding-shard format shared by `uniembed encode`, `uniembed index build` and mining.

Layout of an embeddings directory:
    DIR/shard-00000.npy, DIR/shard-00001.npy, ...   float32 N_i x D arrays (L2-normalised rows)
    DIR/manifest.jsonl                               one row per embedding: {"id": str, "shard": int, "row": int}
    DIR/info.json or DIR/model.json                  {"model_id": Embedder.model_id, ...}: the model that
                                                     encoded (recorded by `index build`, checked by `search`)
    DIR/metadata.jsonl                               optional {"id": str, ...} per item (the input row's other
                                                     fields), copied beside the index and returned with hits
    DIR/shard-00000.json, ...                        each shard's record {"shard", "rows", "bytes", "sha256",
                                                     "planned", "ids", "bad"}, written after the shard: a shard
                                                     is done when its record matches it (`verified_record`)
A multi-vector directory (`info.json` "kind": "multi_vector", see `multistore.py`) has the same files, but each
shard is the flat token matrix of its items (T_k x D) and its record also keeps "lengths" (tokens per item).
The model id may also come from a `model_id` field on the manifest's first row.
One writer (`write_shard`, then `write_manifest` once every shard is done) serves `uniembed encode` and
`write_embeddings`; the manifest is written last, so a directory with a manifest is complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
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
SINGLE_VECTOR, MULTI_VECTOR = "single_vector", "multi_vector"  # info.json / index.json "kind"
METADATA_FILE = "metadata.jsonl"
log = logging.getLogger(__name__)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


@dataclass
class ManifestRow:
    id: str
    shard: int
    row: int


def record_path(directory: Path, index: int) -> Path:
    """Where shard `index`'s record lives: `shard-0000k.json` beside `shard-0000k.npy`."""
    return directory / shard_name(index).replace(".npy", ".json")


def planned_hash(ids: Sequence[str]) -> str:
    """The hash of a block's ids that a record keeps, so a changed input redoes the block."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> None:
    """Write `text` atomically (a temporary file per process, then a rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_shard(directory: Path, index: int, ids: Sequence[str], vectors: np.ndarray | None, dimension: int, *,
                planned: Sequence[str] | None = None, bad: Sequence[dict] = (),
                lengths: Sequence[int] | None = None) -> dict:
    """Shard `index` (float32 rows, atomically), then its record, which marks it done; returns the record.

    `planned` are the ids the block was meant to hold (default `ids`; rows that failed are in `bad`). A multi-vector
    shard passes `lengths` (tokens per item, summing to the rows of `vectors`), kept in the record."""
    if lengths is not None and sum(lengths) != (0 if vectors is None else len(vectors)):
        raise ValueError(f"token counts sum to {sum(lengths)} but the shard has {0 if vectors is None else len(vectors)} rows")
    vectors = np.zeros((0, dimension), np.float32) if vectors is None else np.ascontiguousarray(vectors, np.float32)
    target = directory / shard_name(index)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, vectors)
    os.replace(tmp, target)
    record = {"shard": index, "rows": len(ids), "bytes": target.stat().st_size, "sha256": file_sha256(target),
              "planned": planned_hash(ids if planned is None else planned), "dimension": int(dimension), "ids": list(ids),
              "bad": list(bad)}
    if lengths is not None:
        record["lengths"] = [int(n) for n in lengths]
    write_text(record_path(directory, index), json.dumps(record) + "\n")
    return record


def verified_record(directory: Path, index: int, planned: Sequence[str], dimension: int | None = None,
                    multi_vector: bool = False) -> dict | None:
    """The shard's record when shard and record are intact and hold this block (at `dimension` when given and
    recorded: a rerun with another --dimensions redoes it; of the same kind, single- or `multi_vector`), else None
    (redo it)."""
    path, shard = record_path(directory, index), directory / shard_name(index)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        size = shard.stat().st_size
    except (OSError, ValueError):  # missing, or damaged (invalid UTF-8 / JSON): not done
        return None
    if not isinstance(record, dict) or record.get("planned") != planned_hash(planned) or record.get("bytes") != size:
        return None
    if dimension is not None and record.get("dimension", dimension) != dimension:
        return None
    if multi_vector != ("lengths" in record):
        return None
    if record.get("sha256") != file_sha256(shard):
        log.warning("shard %s does not match its recorded checksum: encoding it again", shard)
        return None
    return record


def write_manifest(directory: Path, records: Sequence[dict]) -> None:
    """manifest.jsonl for shard records in order: one {"id", "shard", "row"} line per embedding."""
    write_text(directory / MANIFEST, "".join(json.dumps({"id": item_id, "shard": record["shard"], "row": row}) + "\n"
                                             for record in records for row, item_id in enumerate(record["ids"])))


def write_embeddings(directory: str | os.PathLike, ids: Sequence[str], embeddings: np.ndarray,
                     shard_size: int = 100_000) -> None:
    """Write a whole (ids, embeddings) set in the shard format, as `uniembed encode` does (shards, records,
    manifest), into a directory that holds no manifest yet."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / MANIFEST).exists():
        raise InputError("embeddings directory already holds a manifest", path=directory,
                         fix="choose an empty --out directory")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(ids) != embeddings.shape[0]:
        raise InputError(f"{len(ids)} ids for embeddings of shape {embeddings.shape}")
    ids = [str(i) for i in ids]
    records = [write_shard(directory, k, ids[start:start + shard_size], embeddings[start:start + shard_size],
                           embeddings.shape[1])
               for k, start in enumerate(range(0, len(ids), shard_size))]
    write_manifest(directory, records)


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


def store_kind(directory: str | os.PathLike) -> str:
    """"multi_vector" when the directory's info.json says so, else "single_vector"."""
    path = Path(directory) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {INFO_FILE} ({exc})", path=path, fix="re-run `uniembed encode`") from exc
    return MULTI_VECTOR if isinstance(info, dict) and info.get("kind") == MULTI_VECTOR else SINGLE_VECTOR


def check_kind(found: str, wanted: str, path: str | os.PathLike, fix: str) -> None:
    """Refuse a multi-vector directory where single-vector ones are read, and vice versa, naming both kinds."""
    if found != wanted:
        raise InputError(f"this is a {found.replace('_', '-')} directory, but a {wanted.replace('_', '-')} one is "
                         "needed here", path=path, fix=fix)


def open_shards(directory: str | os.PathLike, kind: str, fix: str, mmap: bool = True
                ) -> Iterator[tuple[int, list[ManifestRow], Path, np.ndarray]]:
    """Yield (shard number, its manifest rows in manifest order, its file, its array) per shard in shard order,
    for a directory of `kind` (`fix` says what to do with the other kind); arrays memory-mapped by default."""
    directory = Path(directory)
    check_kind(store_kind(directory), kind, directory, fix)
    by_shard: dict[int, list[ManifestRow]] = {}
    for row in read_manifest(directory):
        by_shard.setdefault(row.shard, []).append(row)
    for shard in sorted(by_shard):
        path = directory / shard_name(shard)
        if not path.exists():
            raise InputError("shard named in manifest.jsonl is missing", path=path, fix="re-run `uniembed encode`")
        yield shard, by_shard[shard], path, np.load(path, mmap_mode="r" if mmap else None)


def iter_shards(directory: str | os.PathLike, mmap: bool = True) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield (ids, embeddings) per shard in shard order; embeddings are memory-mapped by default."""
    for _, manifest_rows, path, array in open_shards(
            directory, SINGLE_VECTOR,
            "multi-vector embeddings are read with `uniembed.index.multistore.iter_multi_shards` and indexed with "
            "`uniembed index build --pool-factor N` (it detects them), not as one vector per item", mmap):
        rows = sorted(manifest_rows, key=lambda r: r.row)
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
