"""What the public benchmarks say about each of their data sets: meta-task, split, ranking, metric."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    meta_task: str
    in_distribution: bool | None = None
    ranking: str = "local"  # "local" (own candidate list) or "global" (whole de-duplicated pool)


def _table(entries: dict[str, list[str]], in_distribution: set[str], ranking: dict[str, str] | None = None,
           default_ranking: str = "local") -> dict[str, TaskInfo]:
    return {name: TaskInfo(meta, name in in_distribution if in_distribution else None,
                           (ranking or {}).get(name, default_ranking))
            for meta, names in entries.items() for name in names}


MMEB_V1_TASKS = _table(
    {
        "classification": ["ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "Place365", "ImageNet-A",
                           "ImageNet-R", "ObjectNet", "Country211"],
        "vqa": ["OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W", "ScienceQA", "VizWiz", "GQA",
                "TextVQA"],
        "retrieval": ["VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t", "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS",
                      "WebQA", "FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS"],
        "grounding": ["MSCOCO", "RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"],
    },
    in_distribution={"ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "OK-VQA", "A-OKVQA", "DocVQA",
                     "InfographicsVQA", "ChartQA", "Visual7W", "VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t",
                     "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS", "WebQA", "MSCOCO"},
)

MMEB_V2_VIDEO_TASKS = _table(
    {
        "video_classification": ["K700", "SSv2", "HMDB51", "UCF101", "Breakfast"],
        "video_qa": ["MVBench", "Video-MME", "NExT-QA", "EgoSchema", "ActivityNetQA"],
        "video_retrieval": ["DiDeMo", "MSR-VTT", "MSVD", "VATEX", "YouCook2"],
        "moment_retrieval": ["QVHighlights", "Charades-STA", "MomentSeeker"],
    },
    in_distribution=set(),
    ranking={name: "global" for name in ["K700", "HMDB51", "UCF101", "Breakfast", "DiDeMo", "MSR-VTT", "MSVD",
                                          "VATEX", "YouCook2"]},
)

# M-BEIR data sets scored by recall@10 instead of recall@5.
MBEIR_RECALL_AT_10 = {"fashion200k", "fashioniq"}


def normalise_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def lookup(table: dict[str, TaskInfo], name: str) -> TaskInfo | None:
    """A task's info by name, ignoring case and punctuation ("msr_vtt" finds "MSR-VTT")."""
    wanted = normalise_name(name)
    for key, info in table.items():
        if normalise_name(key) == wanted:
            return info
    return None
