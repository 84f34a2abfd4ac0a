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

# The meta-task and modality group of a data set of one's own read in a benchmark's layout (`--datasets` names
# its folder): grouped apart and left out of the benchmark's overall and the published-score comparison.
CUSTOM = "custom"

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


# ------------------------------------------------------------------------------------------------ MMEB-V2
# Where each MMEB-V2 data set comes from and how the reference evaluation reads it (TIGER-AI-Lab/VLM2Vec@6e1e1d4):
#   task names, modality groups: experiments/report_score_v2.py:63-82 (modality2dataset; the leaderboard's names)
#   hub repository, subset, split: src/constant/dataset_hf_path.py:4-64 (EVAL_DATASET_HF_PATH)
#   parser, frame folder, eval_type (local/global), frames: experiments/public/eval/{image,video,visdoc}.yaml
#   instructions: the TASK_INST_QRY / TASK_INST_TGT / TASK_PROMPT constants of each src/data/eval_dataset/*.py
#   (cited per parser in mmeb_v2_video.py and visdoc.py). The reference hard-codes them as part of the data.

MMEB_V2_MEDIA_REPO = "TIGER-Lab/MMEB-V2"  # frames (video-tasks/frames/...) and images (image-tasks/...)
MMEB_V2_IMAGE_REPO = "ziyjiang/MMEB_Test_Instruct"  # src/data/eval_dataset/image_cls_dataset.py:39 (all image parsers)


@dataclass(frozen=True)
class Source:
    """One MMEB-V2 task: which hub repository holds its table, which subset/split, and how it is read."""

    task: str
    group: str  # image | video | visdoc
    meta_task: str
    repo: str
    subset: str | None
    split: str
    parser: str
    ranking: str  # local | global (the yaml's eval_type)
    frame_root: str | None = None  # relative to the MMEB-V2 media folder (video tasks)
    language: str | None = None  # ViDoRe-v2 English tasks keep only queries of this language


def _video(task, meta, repo, subset, split, parser, ranking, frame_root) -> Source:
    return Source(task, "video", meta, repo, subset, split, parser, ranking, frame_root)


# experiments/public/eval/video.yaml:1-166 (frame_root, eval_type, dataset_parser); dataset_hf_path.py:4-29
MMEB_V2_VIDEO = [
    _video("K700", "video_classification", "VLM2Vec/Kinetics-700", None, "test", "video_classification", "global",
           "video-tasks/frames/video_cls/K700"),
    _video("SmthSmthV2", "video_classification", "VLM2Vec/SmthSmthV2", None, "test", "ssv2", "local",
           "video-tasks/frames/video_cls/SSv2"),
    _video("HMDB51", "video_classification", "VLM2Vec/HMDB51", None, "test", "video_classification", "global",
           "video-tasks/frames/video_cls/HMDB51"),
    _video("UCF101", "video_classification", "VLM2Vec/UCF101", None, "test", "video_classification", "global",
           "video-tasks/frames/video_cls/UCF101"),
    _video("Breakfast", "video_classification", "VLM2Vec/Breakfast", None, "test", "video_classification", "global",
           "video-tasks/frames/video_cls/Breakfast"),
    _video("MVBench", "video_qa", "VLM2Vec/MVBench", None, "train", "mvbench", "local",
           "video-tasks/frames/video_qa/MVBench"),
    _video("Video-MME", "video_qa", "VLM2Vec/Video-MME", None, "test", "videomme", "local",
           "video-tasks/frames/video_qa/Video-MME"),
    _video("NExTQA", "video_qa", "VLM2Vec/NExTQA", "MC", "test", "nextqa", "local",
           "video-tasks/frames/video_qa/NExTQA"),
    _video("EgoSchema", "video_qa", "VLM2Vec/EgoSchema", "Subset", "test", "egoschema", "local",
           "video-tasks/frames/video_qa/EgoSchema"),
    _video("ActivityNetQA", "video_qa", "VLM2Vec/ActivityNetQA", None, "test", "activitynetqa", "local",
           "video-tasks/frames/video_qa/ActivityNetQA"),
    _video("DiDeMo", "video_retrieval", "VLM2Vec/DiDeMo", None, "test", "didemo", "global",
           "video-tasks/frames/video_ret/DiDeMo"),
    _video("MSR-VTT", "video_retrieval", "VLM2Vec/MSR-VTT", "test_1k", "test", "msrvtt", "global",
           "video-tasks/frames/video_ret/MSR-VTT"),
    _video("MSVD", "video_retrieval", "VLM2Vec/MSVD", None, "test", "msvd", "global",
           "video-tasks/frames/video_ret/MSVD"),
    _video("VATEX", "video_retrieval", "VLM2Vec/VATEX", None, "test", "vatex", "global",
           "video-tasks/frames/video_ret/VATEX"),
    _video("YouCook2", "video_retrieval", "lmms-lab/YouCook2", None, "val", "youcook2", "global",
           "video-tasks/frames/video_ret/YouCook2"),
    _video("QVHighlight", "moment_retrieval", "VLM2Vec/QVHighlight", None, "test", "moment_retrieval", "local",
           "video-tasks/frames/video_mret/QVHighlight"),
    _video("Charades-STA", "moment_retrieval", "VLM2Vec/Charades-STA", None, "test", "moment_retrieval", "local",
           "video-tasks/frames/video_mret/Charades_STA"),
    _video("MomentSeeker", "moment_retrieval", "VLM2Vec/MomentSeeker", None, "test", "momentseeker", "local",
           "video-tasks/frames/video_mret/MomentSeeker"),
]

# experiments/public/eval/visdoc.yaml (all eval_type: global); dataset_hf_path.py:32-64. The leaderboard's
# visdoc meta-tasks: ViDoRe-V1, ViDoRe-V2, VisRAG, and the out-of-domain ViDoSeek / MMLongBench sets.
_VIDORE_V1 = ["arxivqa_test_subsampled_beir", "docvqa_test_subsampled_beir", "infovqa_test_subsampled_beir",
              "tabfquad_test_subsampled_beir", "tatdqa_test_beir", "shiftproject_test_beir",
              "syntheticDocQA_artificial_intelligence_test_beir", "syntheticDocQA_energy_test_beir",
              "syntheticDocQA_government_reports_test_beir", "syntheticDocQA_healthcare_industry_test_beir"]
_VIDORE_V1_TASKS = ["arxivqa", "docvqa", "infovqa", "tabfquad", "tatdqa", "shiftproject",
                    "syntheticDocQA_artificial_intelligence", "syntheticDocQA_energy",
                    "syntheticDocQA_government_reports", "syntheticDocQA_healthcare_industry"]
MMEB_V2_VISDOC = (
    [Source(f"ViDoRe_{t}", "visdoc", "vidore_v1", f"vidore/{r}", None, "test", "vidore", "global")
     for t, r in zip(_VIDORE_V1_TASKS, _VIDORE_V1)]
    + [Source("ViDoRe_esg_reports_human_labeled_v2", "visdoc", "vidore_v2", "vidore/esg_reports_human_labeled_v2",
              None, "test", "vidore", "global")]
    # the "_multilingual" tasks read every query; the leaderboard lists only these three of the pairs, the
    # English ones (subset "english" = a filter on the queries' `language` column, vidore_dataset.py:85-86)
    # are extra tasks of the reference outside the 78.
    + [Source(f"ViDoRe_{n}_v2_multilingual", "visdoc", "vidore_v2", f"vidore/{n}_v2", None, "test", "vidore", "global")
       for n in ("biomedical_lectures", "economics_reports", "esg_reports")]
    + [Source(f"VisRAG_{n}", "visdoc", "visrag", f"openbmb/VisRAG-Ret-Test-{n}", None, "train", "visrag", "global")
       for n in ("ArxivQA", "ChartQA", "MP-DocVQA", "SlideVQA", "InfoVQA", "PlotQA")]
    + [Source("ViDoSeek-page", "visdoc", "visdoc_ood", "VLM2Vec/ViDoSeek-page-fixed", None, "test", "vidore", "global"),
       Source("ViDoSeek-doc", "visdoc", "visdoc_ood", "VLM2Vec/ViDoSeek", None, "test", "vidore", "global"),
       Source("MMLongBench-page", "visdoc", "visdoc_ood", "VLM2Vec/MMLongBench-page-fixed", None, "test", "vidore",
              "global"),
       Source("MMLongBench-doc", "visdoc", "visdoc_ood", "VLM2Vec/MMLongBench-doc", None, "test", "vidore", "global")]
)
# The English halves of the ViDoRe-v2 pairs: same repository, queries filtered to `language == "english"`.
MMEB_V2_VISDOC_EXTRA = [
    Source(f"ViDoRe_{n}_v2", "visdoc", "vidore_v2", f"vidore/{n}_v2", None, "test", "vidore", "global",
           language="english")
    for n in ("biomedical_lectures", "economics_reports", "esg_reports")]

# experiments/public/eval/image.yaml: every image task reads subset <task> of ziyjiang/MMEB_Test_Instruct,
# split test, image_root image-tasks/, eval_type local.
# The parser of each image task (image.yaml `dataset_parser`): image_cls, image_qa and image_i2t rank the raw
# `tgt_text` (no target instruction, image_cls_dataset.py:26-31, image_i2t_eval.py:26-31); image_t2i and
# image_i2i_vg put `tgt_inst` on every candidate (image_t2i_eval.py:24-40).
IMAGE_PARSERS = {
    "image_cls": ["ImageNet-1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "Place365", "ImageNet-A",
                  "ImageNet-R", "ObjectNet", "Country211"],
    "image_qa": ["OK-VQA", "A-OKVQA", "DocVQA", "InfographicsVQA", "ChartQA", "Visual7W", "ScienceQA", "VizWiz",
                 "GQA", "TextVQA"],
    "image_i2t": ["MSCOCO_i2t", "VisualNews_i2t"],
    "image_t2i": ["VisDial", "MSCOCO_t2i", "VisualNews_t2i", "WebQA", "EDIS", "Wiki-SS-NQ"],
    "image_i2i_vg": ["CIRR", "NIGHTS", "OVEN", "FashionIQ", "MSCOCO", "RefCOCO", "RefCOCO-Matching",
                     "Visual7W-Pointing"],
}
_IMAGE_PARSER = {task: parser for parser, tasks in IMAGE_PARSERS.items() for task in tasks}
MMEB_V2_IMAGE = [Source(name, "image", info.meta_task, MMEB_V2_IMAGE_REPO, name, "test", _IMAGE_PARSER[name], "local")
                 for name, info in MMEB_V1_TASKS.items()]

MMEB_V2_VIDEO_TASKS = {s.task: TaskInfo(s.meta_task, None, s.ranking) for s in MMEB_V2_VIDEO}
MMEB_V2_VISDOC_TASKS = {s.task: TaskInfo(s.meta_task, None, s.ranking) for s in MMEB_V2_VISDOC + MMEB_V2_VISDOC_EXTRA}
MMEB_V2_SOURCES: dict[str, Source] = {s.task: s for s in MMEB_V2_IMAGE + MMEB_V2_VIDEO + MMEB_V2_VISDOC}
MMEB_V2_EXTRA_SOURCES: dict[str, Source] = {s.task: s for s in MMEB_V2_VISDOC_EXTRA}


def video_labels(dataset: str) -> list[str]:
    """The full label list a video classification data set ranks against (the reference's corpus)."""
    import json
    from importlib import resources

    table = json.loads(resources.files(__package__).joinpath("video_labels.json").read_text(encoding="utf-8"))
    return list(table["labels"][dataset])
