"""The task tables of the real benchmarks (names, meta-tasks, in/out of distribution, ranking, metric).

Facts from benchmarks.md: MMEB-V1's 36 image tasks, MMEB-V2's 18 video and 24 visual-document tasks,
and M-BEIR's 16 dataset-task pairs.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str
    meta_task: str
    modality_group: str = "image"
    in_distribution: bool | None = None
    ranking: str = "local"         # "local" (own candidate list) or "global" (whole pool)
    metric: str = "hit@1"


def _image_tasks() -> list[TaskSpec]:
    table = {
        "classification": (["ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397"],
                           ["Place365", "ImageNet-A", "ImageNet-R", "ObjectNet", "Country211"]),
        "VQA": (["OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W"],
                ["ScienceQA", "VizWiz", "GQA", "TextVQA"]),
        "retrieval": (["VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t", "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS", "WebQA"],
                      ["FashionIQ", "Wiki-SS-NQ", "OVEN", "EDIS"]),
        "grounding": (["MSCOCO"], ["RefCOCO", "RefCOCO-Matching", "Visual7W-Pointing"]),
    }
    return [TaskSpec(name, meta, "image", in_dist)
            for meta, (ind, ood) in table.items()
            for in_dist, names in ((True, ind), (False, ood)) for name in names]


MMEB_V1_TASKS: tuple[TaskSpec, ...] = tuple(_image_tasks())

MMEB_V2_VIDEO_TASKS: tuple[TaskSpec, ...] = tuple(
    [TaskSpec("SSv2", "video classification", "video", ranking="local")]
    + [TaskSpec(n, "video classification", "video", ranking="global") for n in ("K700", "HMDB51", "UCF101", "Breakfast")]
    + [TaskSpec(n, "video QA", "video", ranking="local") for n in ("MVBench", "Video-MME", "NExT-QA", "EgoSchema", "ActivityNetQA")]
    + [TaskSpec(n, "video retrieval", "video", ranking="global") for n in ("DiDeMo", "MSR-VTT", "MSVD", "VATEX", "YouCook2")]
    + [TaskSpec(n, "moment retrieval", "video", ranking="local") for n in ("QVHighlights", "Charades-STA", "MomentSeeker")]
)

_VIDORE_V1 = ("ViDoRe_arxivqa", "ViDoRe_docvqa", "ViDoRe_infovqa", "ViDoRe_tabfquad", "ViDoRe_tatdqa",
              "ViDoRe_shiftproject", "ViDoRe_syntheticDocQA_artificial_intelligence", "ViDoRe_syntheticDocQA_energy",
              "ViDoRe_syntheticDocQA_government_reports", "ViDoRe_syntheticDocQA_healthcare_industry")
_VIDORE_V2 = ("ViDoRe_esg_reports_human_labeled_v2", "ViDoRe_biomedical_lectures_v2", "ViDoRe_economics_reports_v2",
              "ViDoRe_esg_reports_v2")
_VISRAG = ("VisRAG_ArxivQA", "VisRAG_ChartQA", "VisRAG_MP-DocVQA", "VisRAG_SlideVQA", "VisRAG_InfoVQA", "VisRAG_PlotQA")
_OTHER_DOCS = ("ViDoSeek-page", "ViDoSeek-doc", "MMLongBench-page", "MMLongBench-doc")

MMEB_V2_VISDOC_TASKS: tuple[TaskSpec, ...] = tuple(
    [TaskSpec(n, "ViDoRe-V1", "visdoc", ranking="global", metric="ndcg@5") for n in _VIDORE_V1]
    + [TaskSpec(n, "ViDoRe-V2", "visdoc", ranking="global", metric="ndcg@5") for n in _VIDORE_V2]
    + [TaskSpec(n, "VisRAG", "visdoc", ranking="global", metric="ndcg@5") for n in _VISRAG]
    + [TaskSpec(n, "visdoc OOD", "visdoc", ranking="global", metric="ndcg@5") for n in _OTHER_DOCS]
)

MMEB_V2_TASKS: tuple[TaskSpec, ...] = MMEB_V1_TASKS + MMEB_V2_VIDEO_TASKS + MMEB_V2_VISDOC_TASKS


@dataclass(frozen=True)
class MBeirSpec:
    name: str          # "<dataset>_task<id>", as M-BEIR names its local pools
    dataset: str
    task_id: int
    modality: str      # "t->i", ...
    metric: str


MBEIR_TASK_MODALITY = {0: "t->i", 1: "t->t", 2: "t->(i,t)", 3: "i->t", 4: "i->i", 6: "(i,t)->t", 7: "(i,t)->i",
                       8: "(i,t)->(i,t)"}
_MBEIR_PAIRS = ((0, "VisualNews"), (0, "MSCOCO"), (0, "Fashion200K"), (1, "WebQA"), (2, "EDIS"), (2, "WebQA"),
                (3, "VisualNews"), (3, "MSCOCO"), (3, "Fashion200K"), (4, "NIGHTS"), (6, "OVEN"), (6, "InfoSeek"),
                (7, "FashionIQ"), (7, "CIRR"), (8, "OVEN"), (8, "InfoSeek"))
MBEIR_FASHION = {"Fashion200K", "FashionIQ"}
MBEIR_TASKS: tuple[MBeirSpec, ...] = tuple(
    MBeirSpec(f"{dataset}_task{task}", dataset, task, MBEIR_TASK_MODALITY[task],
              "hit@10" if dataset in MBEIR_FASHION else "hit@5")
    for task, dataset in _MBEIR_PAIRS)


def check_counts() -> None:
    assert len(MMEB_V1_TASKS) == 36 and sum(t.in_distribution for t in MMEB_V1_TASKS) == 20
    assert len(MMEB_V2_VIDEO_TASKS) == 18 and len(MMEB_V2_VISDOC_TASKS) == 24 and len(MMEB_V2_TASKS) == 78
    assert len(MBEIR_TASKS) == 16
