"""Tiny data sets in the real layouts, written by the data tests (parquet via pyarrow, PNGs via PIL)."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def png(path: Path, colour: tuple[int, int, int] = (255, 0, 0), size: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)
    return path


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def parquet(path: Path, columns: dict[str, list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def jsonl(path: Path, rows: list, raw_lines: dict[int, str] | None = None) -> Path:
    """Rows as JSON lines; `raw_lines` puts verbatim text at given 0-based line positions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row) for row in rows]
    for position, text in sorted((raw_lines or {}).items()):
        lines.insert(position, text)
    path.write_text("\n".join(lines) + "\n")
    return path


def frames(folder: Path, count: int, colour: tuple[int, int, int] = (0, 0, 255)) -> Path:
    for i in range(count):
        png(folder / f"frame_{i:04d}.jpg", colour)  # PIL picks JPEG from the suffix
    return folder
