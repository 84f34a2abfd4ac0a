"""CIRCO (composed image retrieval) as its release unpacks: the miccunifi/CIRCO clone plus COCO 2017 unlabeled
(miccunifi/CIRCO@075e16c README.md "Data Structure"; read as src/dataset.py:41-52 @65b3af6 does):

    DIR/annotations/val.json       list of {"id", "reference_img_id", "relative_caption", "gt_img_ids", ...}
    DIR/COCO2017_unlabeled/annotations/image_info_unlabeled2017.json   {"images": [{"id", "file_name"}, ...]}
    DIR/COCO2017_unlabeled/unlabeled2017/<file_name>

The pool is every image of image_info_unlabeled2017.json (the reference image stays in it); mAP@5/10/25/50
with AP@k = sum of precision at the hits in the top k / min(#gt, k) (chaxjli/U-MARVEL@2f8afed
eval/eval_zeroshot/eval_circo.py:182-190). test.json has no gt_img_ids (README: scored by the CIRCO server),
so the suite scores val.json, as U-MARVEL's eval_zeroshot.sh runs it (`--split val`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .release import Release, entry_fields, existing, read_json

# chaxjli/U-MARVEL@2f8afed dataset/datasets_circo.py:100
CIRCO_INSTRUCTION = "I'm looking for a similar everyday image with the described changes."

CIRCO = Release("CIRCO", ("CIRCO", "circo"),  # "circo": U-MARVEL README.md:61
                ("annotations/val.json", "COCO2017_unlabeled/annotations/image_info_unlabeled2017.json"),
                ("id", "reference_img_id", "relative_caption", "gt_img_ids", "images[].id", "images[].file_name"),
                ("COCO2017_unlabeled/unlabeled2017",), instructions={"composed": CIRCO_INSTRUCTION},
                source="miccunifi/CIRCO (git clone) + COCO 2017 unlabeled images and image info")


def read_circo(release: Release, folder: Path, find_images: Callable[[], Path]) -> list[EvalTask]:
    """The CIRCO val task: reference image + relative caption -> the ground-truth images of the whole pool.

    `find_images()` finds the image folder; it is asked after the annotations are read, so a missing annotation
    file is the error a user sees first."""
    annotations_path, info_path = (folder / f for f in release.files)
    annotations = read_json(annotations_path)
    info = read_json(info_path)
    images = info.get("images") if isinstance(info, dict) else None
    if not isinstance(images, list):
        raise InputError('no "images" list', path=info_path, fix="use COCO's image_info_unlabeled2017.json")
    image_dir = find_images()
    ids, paths = [], []
    for n, entry in enumerate(images, 1):
        image_id, file_name = entry_fields(entry, ("id", "file_name"), info_path, n)
        ids.append(str(image_id))
        paths.append(image_dir / str(file_name))
    position = {image_id: i for i, image_id in enumerate(ids)}
    queries, qrels, query_ids = [], [], []
    for n, row in enumerate(annotations, 1):
        if isinstance(row, dict) and "gt_img_ids" not in row:
            raise InputError("annotation has no gt_img_ids (CIRCO's test split is scored by its server)",
                             path=annotations_path, row=n, fix="use the val split's annotations/val.json")
        query_id, reference, caption, targets = entry_fields(row, release.keys[:4], annotations_path, n)
        missing = [str(t) for t in [reference, *targets] if str(t) not in position]
        if missing:
            raise InputError(f"image id(s) {missing} not in {info_path.name}", path=annotations_path, row=n)
        reference_path = existing(paths[position[str(reference)]], annotations_path, n)
        queries.append(Item(text=str(caption), image=str(reference_path),
                            instruction=release.instructions["composed"]))
        qrels.append({position[str(t)]: 1.0 for t in targets})
        query_ids.append(str(query_id))
    candidates = [Item(image=str(existing(p, info_path, n))) for n, p in enumerate(paths, 1)]
    return [EvalTask("CIRCO", queries, candidates, qrels, metric="map@5", meta_task="composed retrieval",
                     modality_group="image", query_ids=query_ids, candidate_ids=ids,
                     extra_metrics=("map@10", "map@25", "map@50"))]
