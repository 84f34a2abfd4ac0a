"""Atomic checkpoints: written to a temporary directory, then renamed, so a SIGKILL at any moment
leaves either the previous complete checkpoint or the new one, never a half-written one."""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^stage(\d+)-step(\d+)$")


@dataclass(frozen=True)
class CheckpointRef:
    path: Path
    stage: int
    step: int


def checkpoint_name(stage: int, step: int) -> str:
    return f"stage{stage}-step{step:08d}"


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `final` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def clean_partial(run_dir: Path) -> None:
    """Remove temporary directories a killed run left behind."""
    for parent in (run_dir, run_dir / CHECKPOINT_DIR):
        if parent.is_dir():
            for leftover in parent.glob(".tmp-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for leftover in parent.glob(".old-*"):
                shutil.rmtree(leftover, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[CheckpointRef]:
    root = Path(run_dir) / CHECKPOINT_DIR
    refs = []
    if root.is_dir():
        for path in root.iterdir():
            match = _NAME.match(path.name)
            if match and (path / "trainer_state.json").exists():
                refs.append(CheckpointRef(path, int(match.group(1)), int(match.group(2))))
    return sorted(refs, key=lambda ref: (ref.stage, ref.step))


def latest_checkpoint(run_dir: Path) -> CheckpointRef | None:
    refs = list_checkpoints(run_dir)
    return refs[-1] if refs else None


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints (the newest is never removed)."""
    refs = list_checkpoints(run_dir)
    for ref in refs[: max(0, len(refs) - max(1, keep))]:
        shutil.rmtree(ref.path, ignore_errors=True)


def capture_rng() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_json(path: Path, payload: Any) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# ---- the run folder's layout: one folder per stage output ---------------------------------------
def stage_dir(run_dir: Path, index: int, stage: Any) -> Path:
    return Path(run_dir) / f"stage{index}-{stage.name}"


def stage_done(run_dir: Path, index: int, stage: Any) -> bool:
    return (stage_dir(run_dir, index, stage) / "uniembed.json").exists()
