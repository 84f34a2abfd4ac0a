"""The `circo` suite: CIRCO composed image retrieval, mAP@5/10/25/50 (layout: `data/readers/circo.py`)."""
from __future__ import annotations

from pathlib import Path

from ....data.examples import EvalTask
from ....data.readers.circo import CIRCO, read_circo
from ....data.readers.release import Release
from ....errors import InputError
from ..base import Suite, SuiteOptions, register, select
from .common import checker, find_folder, folder_candidates, media_folder


def _read(release: Release, folder: Path, options: SuiteOptions) -> list[EvalTask]:
    return read_circo(release, folder, lambda: media_folder(release, folder, options))


def load_circo(data: Path, options: SuiteOptions) -> list[EvalTask]:
    select(["CIRCO"], options.datasets, "circo")
    folder = find_folder(CIRCO, data, options)
    if folder is None:
        tried = ", ".join(str(p) for p in folder_candidates(CIRCO, data, options))
        raise InputError(f"no {CIRCO.files[0]}; tried {tried}",
                         path=data, fix="point --data at the CIRCO clone (annotations/, COCO2017_unlabeled/)")
    return _read(CIRCO, folder, options)


register(Suite("circo", "CIRCO composed image retrieval (mAP@5/10/25/50)", load_circo,
               layout="DIR/annotations/val.json, DIR/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json, "
                      "DIR/COCO2017_unlabeled/unlabeled2017/", check=checker([CIRCO], _read)))
