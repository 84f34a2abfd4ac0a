"""Encode a JSONL corpus into embedding shards (what `uniembed encode` runs), in one process or many.

Rows are `{"id", "text", "image", "images", "video", "instruction", "pdf", "metadata"}`; relative media paths
resolve against the JSONL's folder; a PDF (`"pdf": path`, or an `image` ending in .pdf) expands to one item per
page with ids `<id>#page=<n>`, pages rendered and encoded as a stream (memory does not grow with the page count).

The items, in input order, are cut into blocks of `shard_size`; block k becomes `shard-0000k.npy` and its record
`shard-0000k.json` = {"shard", "rows", "bytes", "sha256", "planned": hash of the block's ids, "ids", "bad"},
written after the shard. A shard is done when its record matches the file (size and checksum) and the current
input's block; anything else (deleted, truncated, damaged, different input) is encoded again. Under torchrun the
blocks are split among the ranks by estimated tokens (`parallel.balanced_owners`); every block is encoded in
the same chunks whichever rank takes it, so the output equals a one-process run's. Rank 0 then writes:
    manifest.jsonl   one row per embedding {"id", "shard", "row"} (`uniembed.index.store` reads it)
    info.json        {"model_id", "model", "dimension", ...}: `uniembed index build` records the model id
    With `Options.multi_vector` the model's `encode_multi` token matrices are stored instead, in the ragged
    multi-vector format (`index/multistore.py`: flat tokens per shard, "lengths" in each record, info.json
    "kind": "multi_vector"), resumed by the same rules.
    metadata.jsonl   {"id", <the row's content fields as given>, "page", <its "metadata" object>} per embedding,
                     returned with search hits (`uniembed.serving.search.read_metadata`)
    bad_rows.jsonl   with --skip-bad: {"line" (1-based JSONL line), "id", "error"} per skipped row or page
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .errors import InputError
from .index.store import (INFO_FILE, METADATA_FILE, record_path, shard_name, verified_record, write_manifest,
                          write_shard, write_text)
from .index.multistore import flatten, multi_info
from .inputs import Item, as_item
from .parallel import SINGLE, World, balanced_owners, wait_for

log = logging.getLogger(__name__)
MEDIA_KEYS = ("image", "video")
CONTENT_KEYS = ("text", "image", "images", "video", "instruction", "pdf")
BAD_ROWS = "bad_rows.jsonl"
PAGE_PLACEHOLDER = Image.new("RGB", (8, 8))
PAGE_WEIGHT_PROBE = Image.new("1", (1224, 1584))  # a US Letter page at the default 144 dpi: what a page weighs


@dataclass
class Row:
    """One JSONL row: its 1-based line, id, item fields (paths resolved), PDF and page count, metadata."""

    line: int
    id: str
    fields: dict[str, Any]
    pdf: str | None = None
    pages: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> list[str]:
        return [f"{self.id}#page={n}" for n in range(self.pages)] if self.pdf is not None else [self.id]


@dataclass
class Options:
    batch_size: int = 32
    shard_size: int = 4096
    instruction: str | None = None
    prompt_name: str | None = None
    pdf_dpi: float = 144
    skip_bad: bool = False
    progress: bool = True
    truncate_dim: int | None = None  # keep the first d coordinates (Matryoshka), as Embedder.encode does
    multi_vector: bool = False  # store Embedder.encode_multi's per-token vectors (late interaction)


def _resolve(value: Any, root: Path) -> Any:
    if isinstance(value, str) and not value.startswith(("data:", "http://", "https://")) and not Path(value).is_absolute():
        return str(root / value)
    return value


def _located(exc: InputError, row_id: str, line: int, path: Path) -> InputError:
    """The error naming the row's id, its 1-based line and the input file; paths resolve against its folder."""
    fix = exc.fix
    if fix and "data root" in fix:
        fix = f"check the path (relative paths resolve against the input file's folder {path.parent})"
    return InputError(f"id {row_id!r}: {exc.problem}", row=line, path=exc.path or str(path), fix=fix)


def parse_row(text: str, line: int, path: Path) -> Row:
    """One JSONL line -> a Row (a PDF's pages are counted, not rendered). Raises InputError naming the line."""
    from .media import pdf_page_count

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", row=line, path=path) from exc
    if not isinstance(data, dict):
        raise InputError("row must be a JSON object", row=line, path=path)
    row_id = str(data.pop("id", line))
    metadata = data.pop("metadata", None) or {}
    if not isinstance(metadata, dict):
        raise InputError(f"id {row_id!r}: \"metadata\" must be a JSON object", row=line, path=path)
    content = {key: data[key] for key in CONTENT_KEYS if key in data}
    root = path.parent
    pdf = data.pop("pdf", None)
    if pdf is None and isinstance(data.get("image"), str) and data["image"].lower().endswith(".pdf"):
        pdf = data.pop("image")
    for key in MEDIA_KEYS:
        if key in data:
            data[key] = _resolve(data[key], root)
    if "images" in data and isinstance(data["images"], list):
        data["images"] = [_resolve(v, root) for v in data["images"]]
    try:
        if pdf is not None:
            pdf = _resolve(pdf, root)
            as_item({**data, "image": PAGE_PLACEHOLDER})  # the other fields are checked before any page renders
            return Row(line, row_id, data, pdf, pdf_page_count(pdf), {**content, **metadata})
        as_item(data)
        return Row(line, row_id, data, metadata={**content, **metadata})
    except InputError as exc:
        raise _located(exc, row_id, line, path) from None


def read_rows(path: Path, skip_bad: bool) -> tuple[list[Row], list[dict]]:
    """Every row of the JSONL (bad ones reported with --skip-bad), ids checked unique."""
    if not path.exists():
        raise InputError("input file not found", path=path)
    rows, bad, seen = [], [], set()
    with open(path, "rb") as handle:
        for line, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"not valid UTF-8 (byte {exc.start})", row=line, path=path,
                                     fix="save the file as UTF-8") from None
                row = parse_row(text, line, path)
            except InputError as exc:
                if not skip_bad:
                    raise
                bad.append(_bad_entry(line, _row_id(raw), exc))
                continue
            for item_id in row.ids():
                if item_id in seen:
                    raise InputError(f"duplicate id {item_id!r}", path=path, row=line, fix="ids must be unique")
                seen.add(item_id)
            rows.append(row)
    return rows, bad


def _row_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("id")
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)


def _bad_entry(line: int, row_id: str | None, exc: InputError) -> dict:
    return {"line": line, "id": row_id, "error": str(exc)}


Slot = tuple[int, int | None]  # (row index, PDF page or None)


def plan_blocks(rows: Sequence[Row], shard_size: int) -> list[list[Slot]]:
    """The items in input order cut into blocks of `shard_size`: block k is shard k."""
    slots: list[Slot] = [(r, page) for r, row in enumerate(rows)
                         for page in (range(row.pages) if row.pdf is not None else [None])]
    return [slots[start:start + shard_size] for start in range(0, len(slots), shard_size)]


def slot_id(rows: Sequence[Row], slot: Slot) -> str:
    row = rows[slot[0]]
    return row.id if slot[1] is None else f"{row.id}#page={slot[1]}"


def iter_block_items(rows: Sequence[Row], block: Sequence[Slot], dpi: float, path: Path,
                     bad: list[dict] | None) -> Iterator[tuple[int, str, Item]]:
    """(line, id, item) per slot; PDF pages rendered one at a time, a document opened once per run of pages."""
    from .media import iter_pdf_pages

    position = 0
    while position < len(block):
        r, page = block[position]
        row = rows[r]
        if page is None:
            yield row.line, row.id, as_item(row.fields)
            position += 1
            continue
        pages = []
        while position < len(block) and block[position][0] == r:
            pages.append(block[position][1])
            position += 1
        try:
            for number, image in zip(pages, iter_pdf_pages(row.pdf, dpi=dpi, pages=pages)):
                yield row.line, f"{row.id}#page={number}", as_item({**row.fields, "image": image})
        except InputError as exc:
            located = _located(exc, row.id, row.line, path)
            if bad is None:
                raise located from None
            bad.append(_bad_entry(row.line, row.id, located))


def encode_block(model: Any, items: Iterator[tuple[int, str, Item]], options: Options, path: Path,
                 bad: list[dict] | None, on_chunk=None) -> tuple[list[str], np.ndarray | None]:
    """Encode a block's items in chunks of at most 4 batches (1 batch of rendered pages); drop bad ones with --skip-bad."""
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    pending: list[tuple[int, str, Item]] = []

    def flush() -> None:
        kept, vectors = encode_chunk(model, pending, options, path, bad)
        if vectors is not None:
            ids.extend(row_id for _, row_id, _ in kept)
            blocks.append(vectors)
        if on_chunk is not None:
            on_chunk(len(pending))
        pending.clear()

    for entry in items:
        pending.append(entry)
        rendered = sum(1 for _, _, item in pending if isinstance(item.image, Image.Image))
        if len(pending) >= 4 * options.batch_size or rendered >= options.batch_size:
            flush()
    if pending:
        flush()
    if options.multi_vector:
        return ids, [tokens for block in blocks for tokens in block]
    return ids, (np.concatenate(blocks) if blocks else None)


def encode_chunk(model: Any, rows: list[tuple[int, str, Item]], options: Options, path: Path, bad: list[dict] | None):
    """Encode a chunk; with --skip-bad, drop items whose media fail to decode and retry."""
    while rows:
        try:
            if options.multi_vector:
                return rows, model.encode_multi([item for _, _, item in rows], batch_size=options.batch_size,
                                                instruction=options.instruction, prompt_name=options.prompt_name,
                                                show_progress_bar=False)
            vectors = model.encode([item for _, _, item in rows], batch_size=options.batch_size,
                                   instruction=options.instruction, prompt_name=options.prompt_name,
                                   show_progress_bar=False, truncate_dim=options.truncate_dim)
            return rows, np.asarray(vectors, dtype=np.float32)
        except InputError as exc:
            if exc.position is None:
                raise
            line, row_id, _ = rows[exc.position]
            located = _located(exc, row_id, line, path)
            if bad is None:
                raise located from None
            bad.append(_bad_entry(line, row_id, located))
            rows = rows[: exc.position] + rows[exc.position + 1:]
    return [], None


# ---- the job --------------------------------------------------------------------------------------------
@dataclass
class EncodeSummary:
    encoded: int
    resumed: int
    bad_rows: int
    out: Path


def encode_corpus(model: Any, input_path: str | os.PathLike, out: str | os.PathLike, options: Options,
                  world: World = SINGLE, model_name: str | None = None) -> EncodeSummary | None:
    """Encode the JSONL into `out`; every rank of `world` calls it; rank 0 returns the summary, the others None."""
    path, out = Path(input_path), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, parse_bad = read_rows(path, options.skip_bad)
    blocks = plan_blocks(rows, options.shard_size)
    planned = [[slot_id(rows, slot) for slot in block] for block in blocks]
    width = model.multi_vector_dimension if options.multi_vector else options.truncate_dim or model.dimension
    if world.is_main:
        done = [k for k in range(len(blocks))
                if verified_record(out, k, planned[k], width, multi_vector=options.multi_vector) is not None]
        for k in set(range(len(blocks))) - set(done):
            record_path(out, k).unlink(missing_ok=True)  # a stale record must not mark a redone shard finished
    digest = plan_digest(planned) if world.distributed else None  # one process has no one to disagree with
    done, main_digest = world.broadcast((done, digest) if world.is_main else None)
    if digest != main_digest:  # each rank would wait for shards the others never plan: stop, saying why
        raise InputError(f"rank {world.rank} read {len(rows)} rows from '{path}' and planned other shards than "
                         "rank 0: the ranks read different inputs (the file changed while they read it, or each "
                         "has its own copy)",
                         fix="give every rank the same, unchanging input file (on a shared filesystem across machines)")
    done = set(done)
    todo = [k for k in range(len(blocks)) if k not in done]
    weight = _weigher(model)
    owners = balanced_owners([sum(weight(rows[r], page) for r, page in blocks[k]) for k in todo], world.size)
    mine = [k for k, owner in zip(todo, owners) if owner == world.rank]
    total = sum(len(blocks[k]) for k in todo)
    bar = tqdm(total=total, desc="encode", unit="item", disable=not (options.progress and world.is_main))
    own = 0

    def show(count: int = 0) -> None:
        nonlocal own
        own += count
        if not bar.disable:
            others = sum(len(blocks[k]) for k, owner in zip(todo, owners)
                         if owner != world.rank and record_path(out, k).exists())
            bar.update(own + others - bar.n)

    for k in mine:
        bad: list[dict] | None = [] if options.skip_bad else None
        ids, vectors = encode_block(model, iter_block_items(rows, blocks[k], options.pdf_dpi, path, bad),
                                    options, path, bad, on_chunk=show)
        if options.multi_vector:
            vectors, lengths = flatten(vectors, width)
            write_shard(out, k, ids, vectors, width, planned=planned[k], bad=bad or [], lengths=lengths)
        else:
            write_shard(out, k, ids, vectors, width, planned=planned[k], bad=bad or [])
    if not world.is_main:
        return None
    wait_for([record_path(out, k) for k in todo], show)
    bar.close()
    records = [json.loads(record_path(out, k).read_text(encoding="utf-8")) for k in range(len(blocks))]
    _finish(out, rows, blocks, records, parse_bad, model, model_name, width, options.multi_vector)
    bad_count = len(parse_bad) + sum(len(r["bad"]) for r in records)
    return EncodeSummary(encoded=total, resumed=sum(len(blocks[k]) for k in done), bad_rows=bad_count, out=out)


def plan_digest(planned: Sequence[Sequence[str]]) -> str:
    """A digest of the shard plan (each shard's slot ids, in order): equal on every rank that read the same input."""
    digest = hashlib.sha256()
    for block in planned:
        digest.update(("\x1f".join(block) + "\x1e").encode("utf-8"))
    return digest.hexdigest()


def _weigher(model: Any):
    """Estimated tokens of one slot (the model's own estimate; every slot weighs the same without one)."""
    estimate = getattr(model, "estimate_tokens", None)

    def weight(row: Row, page: int | None) -> float:
        if estimate is None:
            return 1.0
        try:
            return estimate(as_item({**row.fields, "image": PAGE_WEIGHT_PROBE}) if page is not None else as_item(row.fields))
        except InputError:
            return 1.0
    return weight


def _finish(out: Path, rows: Sequence[Row], blocks: list[list[Slot]], records: list[dict], parse_bad: list[dict],
            model: Any, model_name: str | None, dimension: int, multi_vector: bool = False) -> None:
    """Rank 0: the manifest, info.json, metadata.jsonl and bad_rows.jsonl of the whole output; stale shards removed."""
    write_manifest(out, records)
    index = len(blocks)
    while (out / shard_name(index)).exists() or record_path(out, index).exists():  # from an earlier, longer input
        (out / shard_name(index)).unlink(missing_ok=True)
        record_path(out, index).unlink(missing_ok=True)
        index += 1
    info = {"model_id": model.model_id, "model": model_name or getattr(model, "source", None),
            "dimension": int(dimension), "count": sum(r["rows"] for r in records), "shards": len(records)}
    if multi_vector:
        info = {**info, **multi_info(dimension, model.model_id), "tokens": sum(sum(r["lengths"]) for r in records)}
    write_text(out / INFO_FILE, json.dumps(info, indent=2) + "\n")
    written = {item_id for record in records for item_id in record["ids"]}
    lines = []
    for block in blocks:
        for r, page in block:
            item_id = slot_id(rows, (r, page))
            if item_id in written:
                entry = {"id": item_id, **rows[r].metadata}
                if page is not None:
                    entry["page"] = page
                lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
    write_text(out / METADATA_FILE, "".join(lines))
    bad = parse_bad + [entry for record in records for entry in record["bad"]]
    if bad:
        write_text(out / BAD_ROWS, "".join(json.dumps(entry) + "\n" for entry in sorted(bad, key=lambda e: e["line"])))
    else:
        (out / BAD_ROWS).unlink(missing_ok=True)
