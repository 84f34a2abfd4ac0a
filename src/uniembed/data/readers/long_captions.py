"""Long-caption image-text retrieval (ShareGPT4V-1K, Urban1K) in the layouts U-MARVEL's eval reads
(chaxjli/U-MARVEL@2f8afed scripts/eval/bash/eval_zeroshot.sh:78-79,196-197):

    DIR/ShareGPT4V-1K/datas_for_validation.json   list of {"image_name", "caption"} (datasets_sharegpt4v.py:24-27)
    DIR/ShareGPT4V-1K/val_data/<image_name>
    DIR/Urban1K/caption/<i>.txt (first line), DIR/Urban1K/image/<i>.jpg for i = 1..N (the reference: N = 1000;
                                           datasets_urban1k.py:24-26,94-96)

Tasks "<name> t2i" and "<name> i2t", R@1 (also R@5/10, eval_sharegpt4v.py:177-191).
"""
from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .release import Release, entry_fields, existing, paired_tasks, read_json

# chaxjli/U-MARVEL@2f8afed dataset/...
T2I_INSTRUCTION = "Find me an everyday image that matches the given caption."  # datasets_sharegpt4v.py:92
I2T_INSTRUCTION = "Find an image caption describing the following everyday image."  # datasets_urban1k.py:90

LONG_CAPTIONS = {r.name: r for r in (
    Release("ShareGPT4V-1K", ("ShareGPT4V-1K", "sharegpt4v"), ("datas_for_validation.json",), ("image_name", "caption"),
            ("val_data",), "image", {"t2i": T2I_INSTRUCTION, "i2t": None},  # datasets_sharegpt4v.py:89-94
            "ShareGPT4V-1K as U-MARVEL reads it (datas_for_validation.json + val_data/)"),
    Release("Urban1K", ("Urban1K", "Urban1k"), ("caption/1.txt",), ("<i>.txt first line", "<i>.jpg"), ("image",),
            "image", {"t2i": None, "i2t": I2T_INSTRUCTION},  # datasets_urban1k.py:88-97
            "Urban1k release (image/, caption/)"))}


def read_sharegpt4v(release: Release, folder: Path, image_dir: Path) -> tuple[list[Path], list[list[str]]]:
    """ShareGPT4V-1K: image files and one caption each."""
    path = folder / release.files[0]
    rows = read_json(path)
    pairs = [entry_fields(row, release.keys, path, n) for n, row in enumerate(rows, 1)]
    return ([existing(image_dir / str(name), path, n) for n, (name, _) in enumerate(pairs, 1)],
            [[str(caption)] for _, caption in pairs])


def read_urban1k(release: Release, folder: Path, image_dir: Path) -> tuple[list[Path], list[list[str]]]:
    """Urban1K: image i.jpg and the first line of caption i.txt, for i = 1..N."""
    caption_dir = folder / "caption"
    numbers = sorted(int(p.stem) for p in caption_dir.glob("*.txt") if p.stem.isdigit())
    if not numbers or numbers != list(range(1, len(numbers) + 1)):
        raise InputError("captions must be 1.txt .. N.txt (the reference reads 1..1000)", path=caption_dir)
    images, captions = [], []
    for i in numbers:
        path = caption_dir / f"{i}.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
        captions.append([lines[0].strip() if lines else ""])  # datasets_urban1k.py:95-96: the first line
        images.append(existing(image_dir / f"{i}.jpg", path))
    return images, captions


def read_long_captions(release: Release, folder: Path, image_dir: Path) -> list[EvalTask]:
    """The release's t2i and i2t tasks."""
    read = read_sharegpt4v if release.name == "ShareGPT4V-1K" else read_urban1k
    images, captions = read(release, folder, image_dir)
    return paired_tasks(release, [Item(image=str(p)) for p in images], captions, "t2i", "i2t", ("hit@5", "hit@10"))
