"""SugarCrepe (compositionality) from the RAIVNLab/sugar-crepe clone plus COCO val2017 (chaxjli/U-MARVEL@2f8afed
scripts/eval/bash/eval_zeroshot.sh:104-184):

    DIR/data/<subset>.json   {id: {"filename", "caption", "negative_caption"}} for add_att, add_obj, replace_att,
                             replace_obj, replace_rel, swap_att, swap_obj (those present are used)
    DIR/images/val2017/<filename>  (or DIR/val2017/)

Accuracy = share of images with sim(image, caption) > sim(image, negative_caption), strictly (U-MARVEL
eval/eval_zeroshot/eval_sugar_crepe.py:163-164): each query ranks [negative, true]; a tie counts as wrong.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .release import Release, entry_fields, existing, read_json

SUGARCREPE_SUBSETS = ("add_att", "add_obj", "replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
# chaxjli/U-MARVEL@2f8afed dataset/datasets_sugar_crepe.py:93
SUGARCREPE_INSTRUCTION = "Find an image caption describing the following image."
# datasets_sugar_crepe.py:92-97: only these four subsets give the image query the instruction
SUGARCREPE_INSTRUCTED = ("add_att", "add_obj", "replace_att", "replace_obj")

SUGARCREPE = {s: Release(s, ("sugar-crepe", "SugarCrepe"), (f"data/{s}.json",),
                         ("filename", "caption", "negative_caption"),
                         ("images/val2017", "val2017"), "image",
                         {"i2t": SUGARCREPE_INSTRUCTION if s in SUGARCREPE_INSTRUCTED else None},
                         "RAIVNLab/sugar-crepe (git clone) + COCO val2017 images")
              for s in SUGARCREPE_SUBSETS}


def read_sugarcrepe(release: Release, folder: Path, image_dir: Path) -> list[EvalTask]:
    """One subset's task: each image ranks [negative caption, true caption]."""
    path = folder / release.files[0]
    entries = read_json(path)
    if not isinstance(entries, dict):
        raise InputError("expected an object {id: {filename, caption, negative_caption}}", path=path)
    queries, candidates, lists, index_of = [], [], [], {}

    def caption_index(text: str) -> int:
        if text not in index_of:
            index_of[text] = len(candidates)
            candidates.append(Item(text=text))
        return index_of[text]

    for n, row in enumerate(entries.values(), 1):
        filename, true, false = entry_fields(row, release.keys, path, n)
        queries.append(Item(image=str(existing(image_dir / str(filename), path, n)),
                            instruction=release.instructions["i2t"]))
        lists.append([caption_index(str(false)), caption_index(str(true))])
    return [EvalTask(release.name, queries, candidates, [{1: 1.0}] * len(queries), metric="hit@1",
                     candidate_lists=lists, meta_task=release.name.split("_")[0], modality_group="image", chance=0.5)]
