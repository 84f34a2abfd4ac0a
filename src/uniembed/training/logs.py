"""Training logs: JSONL (machine-readable, survives resume), TensorBoard, and the console."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..jsonl import iter_json_lines

logger = logging.getLogger("uniembed.train")


class TrainingLog:
    """Appends one JSON object per logged step; on resume drops entries past the restored step."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "logs" / "train.jsonl"
        self._tb = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))
            except Exception as exc:  # TensorBoard is optional at run time
                logger.warning("TensorBoard logging disabled: %s (pip install 'uniembed[train]')", exc)

    def truncate_after(self, stage: int, step: int) -> None:
        """Keep entries up to (stage, step): what a resumed run will log again is removed first."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if (entry.get("stage_index", 0), entry.get("step", 0)) <= (stage, step):
                kept.append(line)
        self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, entry: dict[str, Any], global_step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
        if self._tb is not None:
            for key, value in entry.items():
                if isinstance(value, (int, float)) and key not in ("step", "stage_index"):
                    self._tb.add_scalar(f"{entry.get('stage', 'train')}/{key}", value, global_step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "logs" / "train.jsonl"
    if not path.exists():
        return []
    return [entry for _, entry in iter_json_lines(path, on_bad_line=lambda error, number: None)]  # skip cut lines
