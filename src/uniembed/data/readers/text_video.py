"""Text-video retrieval (MSR-VTT, MSVD, DiDeMo) as the CLIP4Clip releases unpack (ArrowLuo/CLIP4Clip@508ffa3
README.md "Data Preparing"):

    DIR/MSR-VTT/MSRVTT_JSFUSION_test.csv   (or in msrvtt_data/, annotations/) columns key,vid_key,video_id,
                                           sentence (1K-A: one sentence a video;
                                           dataloaders/dataloader_msrvtt_retrieval.py:29, U-MARVEL
                                           dataset/datasets_msrvtt.py:24-29)
    DIR/MSR-VTT/videos/all/<video_id>.mp4  (or videos/, MSRVTT_Videos/; U-MARVEL datasets_msrvtt.py:45)
    DIR/MSVD/test_list.txt, DIR/MSVD/raw-captions.pkl (or in msvd_data/)   {video id: [[token, ...], ...]};
                                           a caption is its tokens joined by spaces
                                           (dataloader_msvd_retrieval.py:45-52,70;
                                           U-MARVEL datasets_msvd.py:26-36)
    DIR/MSVD/YouTubeClips/<id>.avi         (or MSVD_Videos/; found by file stem, dataloader_msvd_retrieval.py:55-60)
    DIR/DiDeMo/test_list.txt, DIR/DiDeMo/test_data.json   [{"video", "description", "times", ...}]; all
                                           descriptions of a video joined by spaces are its one paragraph
                                           (dataloader_didemo_retrieval.py:45-85)
    DIR/DiDeMo/DiDeMo_Videos/<video>       (or videos/; found by file name, videos without a file are left out
                                           as the reference does, dataloader_didemo_retrieval.py:88-98)

Tasks "<name> t2v" and "<name> v2t"; R@1/5/10 hit-style (a query counts once any positive is in the top
k, U-MARVEL eval/eval_zeroshot/eval_msrvtt.py:186-190) and median rank. Frames: 2 fps, at most 768
(`TEXT_VIDEO_SAMPLING`, U-MARVEL's qwen-vl-utils defaults).
"""
from __future__ import annotations

import csv
import logging
from collections import defaultdict
from pathlib import Path

from ...errors import InputError
from ...inputs import Item
from ..examples import EvalTask
from .release import Release, by_name, entry_fields, existing, file_path, paired_tasks, read_json, read_lines, read_pickle

log = logging.getLogger(__name__)

# chaxjli/U-MARVEL@2f8afed dataset/datasets_msrvtt.py:96, datasets_msvd.py:103
T2V_INSTRUCTION = "Find an everyday video match with caption."

_CLIP4CLIP = "ArrowLuo/CLIP4Clip release"
TEXT_VIDEO = {r.name: r for r in (
    Release("MSR-VTT", ("MSR-VTT", "msrvtt", "MSRVTT"), ("MSRVTT_JSFUSION_test.csv",),
            ("key", "vid_key", "video_id", "sentence"), ("videos/all", "videos", "MSRVTT_Videos"), "video",
            {"t2v": T2V_INSTRUCTION, "v2t": None}, f"{_CLIP4CLIP} msrvtt_data.zip + MSRVTT videos",
            ("", "msrvtt_data", "annotations")),  # the zip's folder; U-MARVEL eval_zeroshot.sh:249 annotations/
    Release("MSVD", ("MSVD", "msvd"), ("test_list.txt", "raw-captions.pkl"), ("video id -> [[token, ...]]",),
            ("YouTubeClips", "MSVD_Videos", "videos"), "video", {"t2v": T2V_INSTRUCTION, "v2t": None},
            f"{_CLIP4CLIP} msvd_data.zip + YouTubeClips", ("", "msvd_data")),
    # U-MARVEL does not evaluate DiDeMo: its MSR-VTT instruction is used (not from a DiDeMo reference)
    Release("DiDeMo", ("DiDeMo", "didemo"), ("test_list.txt", "test_data.json"), ("video", "description"),
            ("DiDeMo_Videos", "videos"), "video", {"t2v": T2V_INSTRUCTION, "v2t": None},
            "LisaAnne/LocalizingMoments test_data.json + collaborative-experts test_list.txt + videos"))}


def read_msrvtt(release: Release, folder: Path) -> tuple[list[Path], list[list[str]]]:
    """MSR-VTT 1K-A: video file names and one sentence each."""
    path = file_path(release, folder, 0)
    if not path.is_file():
        raise InputError("file not found", path=path)
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("video_id", "sentence") if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"no column(s) {missing}; has {reader.fieldnames}", path=path,
                             fix="use the JSFusion 1K-A test csv (key,vid_key,video_id,sentence)")
        rows = [(n, row["video_id"], row["sentence"]) for n, row in enumerate(reader, 2)]
    return [Path(f"{vid}.mp4") for _, vid, _ in rows], [[str(s)] for _, _, s in rows]


def read_msvd(release: Release, folder: Path) -> tuple[list[str], list[list[str]]]:
    """MSVD test: video ids and all their captions (tokens joined by spaces)."""
    ids = read_lines(file_path(release, folder, 0))
    captions_path = file_path(release, folder, 1)
    captions = read_pickle(captions_path)
    if not isinstance(captions, dict):
        raise InputError(f"expected a dict of video id -> captions, got {type(captions).__name__}", path=captions_path)
    missing = [i for i in ids if i not in captions]
    if missing:
        raise InputError(f"no captions for video(s) {missing[:5]}", path=captions_path)
    texts = [[" ".join(cap) if isinstance(cap, (list, tuple)) else str(cap) for cap in captions[i]] for i in ids]
    return ids, texts


def read_didemo(release: Release, folder: Path) -> tuple[list[str], list[list[str]]]:
    """DiDeMo test: video ids and one paragraph each (its descriptions joined)."""
    ids = read_lines(file_path(release, folder, 0))
    wanted = set(ids)
    data_path = file_path(release, folder, 1)
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for n, row in enumerate(read_json(data_path), 1):
        video, description = entry_fields(row, ("video", "description"), data_path, n)
        if video in wanted:
            paragraphs[str(video)].append(str(description))
    ids = [i for i in ids if i in paragraphs]
    return ids, [[" ".join(paragraphs[i])] for i in ids]


def read_text_video(release: Release, folder: Path, video_dir: Path) -> list[EvalTask]:
    """The release's t2v and v2t tasks, videos found under `video_dir`."""
    where = file_path(release, folder, 0)
    if release.name == "MSR-VTT":
        names, captions = read_msrvtt(release, folder)
        videos = [existing(video_dir / name, where, n) for n, name in enumerate(names, 2)]
    else:
        ids, captions = (read_msvd if release.name == "MSVD" else read_didemo)(release, folder)
        found = by_name(video_dir, "video", stem=release.name == "MSVD")
        if release.name == "DiDeMo":  # the reference keeps only the videos it finds (loader lines 88-98)
            keep = [i for i, vid in enumerate(ids) if vid in found]
            if len(keep) < len(ids):
                log.warning("DiDeMo: %d of %d test videos have no file under %s; left out as the reference does",
                            len(ids) - len(keep), len(ids), video_dir)
            ids, captions = [ids[i] for i in keep], [captions[i] for i in keep]
        missing = [i for i in ids if i not in found]
        if missing:
            raise InputError(f"video(s) {missing[:5]} not found under {video_dir}", path=where,
                             fix="unpack the videos there or pass --video-root")
        videos = [found[i] for i in ids]
    return paired_tasks(release, [Item(video=str(v)) for v in videos], captions, "t2v", "v2t",
                        ("hit@5", "hit@10", "median_rank"))
