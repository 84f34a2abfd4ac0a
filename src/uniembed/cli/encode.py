"""`uniembed encode`: embed a JSONL of items into resumable embedding shards with an id manifest.

Rows are `{"id", "text", "image", "images", "video", "instruction"}`; relative media paths resolve
against the JSONL's folder; a PDF (`"pdf": path`, or an `image` ending in .pdf) expands to one item
per page with ids `<id>#page=<n>`. Each shard is written whole before its ids enter the manifest,
so an interrupted run resumes without redoing finished shards.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from ..errors import InputError
from ..inputs import Item, as_item
from .common import add_model_argument, load_model

logger = logging.getLogger(__name__)
MEDIA_KEYS = ("image", "video")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("encode", help="embed a JSONL of items into embedding shards + id manifest")
    add_model_argument(parser)
    parser.add_argument("--input", required=True, help="JSONL rows {id, text, image, images, video, instruction, pdf}")
    parser.add_argument("--out", required=True, help="output directory (shard-*.npy + manifest.jsonl)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=4096, help="items per shard (the unit of resumption)")
    parser.add_argument("--instruction", default=None, help="instruction for rows that have none")
    parser.add_argument("--prompt-name", default=None, help="one of the model's named prompts (query, document...)")
    parser.add_argument("--pdf-dpi", type=float, default=144)
    parser.add_argument("--skip-bad", action="store_true", help="report bad rows to bad_rows.jsonl and continue")
    parser.set_defaults(func=run)


def _resolve(value: Any, root: Path) -> Any:
    if isinstance(value, str) and not value.startswith(("data:", "http://", "https://")) and not Path(value).is_absolute():
        return str(root / value)
    return value


def parse_row(line: str, number: int, root: Path, pdf_dpi: float) -> list[tuple[str, Item]]:
    """One JSONL line -> [(id, item)], several for a PDF. Raises InputError naming the line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc.msg})", row=number) from exc
    if not isinstance(row, dict):
        raise InputError("row must be a JSON object", row=number)
    row_id = str(row.pop("id", number))
    pdf = row.pop("pdf", None)
    if pdf is None and isinstance(row.get("image"), str) and row["image"].lower().endswith(".pdf"):
        pdf = row.pop("image")
    for key in MEDIA_KEYS:
        if key in row:
            row[key] = _resolve(row[key], root)
    if "images" in row and isinstance(row["images"], list):
        row["images"] = [_resolve(v, root) for v in row["images"]]
    try:
        if pdf is not None:
            from ..media import pdf_pages

            pages = pdf_pages(_resolve(pdf, root), dpi=pdf_dpi)
            return [(f"{row_id}#page={n}", as_item({**row, "image": page})) for n, page in enumerate(pages)]
        return [(row_id, as_item(row))]
    except InputError as exc:
        raise InputError(f"id {row_id!r}: {exc.problem}", row=number, path=exc.path, fix=exc.fix) from None


def read_rows(path: Path, pdf_dpi: float, skip_bad: bool, bad_log: list[dict]) -> Iterator[tuple[int, str, Item]]:
    if not path.exists():
        raise InputError("input file not found", path=path)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                for row_id, item in parse_row(line, number, path.parent, pdf_dpi):
                    yield number, row_id, item
            except InputError as exc:
                if not skip_bad:
                    raise exc.at(path=str(path))
                bad_log.append({"line": number, "error": str(exc)})


def encode_chunk(model: Any, rows: list[tuple[int, str, Item]], args: argparse.Namespace, bad_log: list[dict]):
    """Encode a chunk; with --skip-bad, drop items whose media fail to decode and retry."""
    while rows:
        try:
            vectors = model.encode([item for _, _, item in rows], batch_size=args.batch_size,
                                   instruction=args.instruction, prompt_name=args.prompt_name, show_progress_bar=False)
            return rows, vectors
        except InputError as exc:
            if exc.position is None:
                raise
            number, row_id, _ = rows[exc.position]
            located = InputError(f"id {row_id!r}: {exc.problem}", row=number, path=exc.path or args.input, fix=exc.fix)
            if not args.skip_bad:
                raise located from None
            bad_log.append({"line": number, "id": row_id, "error": str(located)})
            rows = rows[: exc.position] + rows[exc.position + 1:]
    return [], None


def run(args: argparse.Namespace) -> int:
    from ..index.store import ShardWriter

    out = Path(args.out)
    writer = ShardWriter(out, shard_size=args.shard_size, resume=True)
    done = writer.written_ids
    bad_log: list[dict] = []
    model = load_model(args.model, args.device, args.dtype, profile=args.profile)
    seen: set[str] = set()
    pending: list[tuple[int, str, Item]] = []
    progress = tqdm(desc="encode", unit="item")
    skipped = encoded = 0

    def flush() -> None:
        nonlocal encoded, pending
        kept, vectors = encode_chunk(model, pending, args, bad_log)
        if vectors is not None:
            writer.add([row_id for _, row_id, _ in kept], vectors)
            encoded += len(kept)
        progress.update(len(pending))
        pending = []

    try:
        for number, row_id, item in read_rows(Path(args.input), args.pdf_dpi, args.skip_bad, bad_log):
            if row_id in seen:
                raise InputError(f"duplicate id {row_id!r}", path=args.input, row=number, fix="ids must be unique")
            seen.add(row_id)
            if row_id in done:
                skipped += 1
                progress.update(1)
                continue
            pending.append((number, row_id, item))
            if len(pending) >= args.shard_size:
                flush()
        if pending:
            flush()
    finally:
        writer.close()
        progress.close()
        if bad_log:
            with open(out / "bad_rows.jsonl", "a", encoding="utf-8") as handle:
                for entry in bad_log:
                    handle.write(json.dumps(entry) + "\n")
    print(f"encoded {encoded} items, {skipped} already done (resumed), {len(bad_log)} bad rows"
          + (f" (see {out / 'bad_rows.jsonl'})" if bad_log else "") + f" -> {out}")
    return 0
