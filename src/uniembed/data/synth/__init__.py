"""A procedurally drawn multimodal benchmark in the real MMEB / MMEB-V2 / BEIR layouts.

`generate(out_dir, size="tiny"|"small"|"full", seed=0)` (CLI: `uniembed synth --out DIR --size small --seed 0`)
draws a world of shapes (6 shapes x 8 colours x 2 sizes on a 3 x 3 grid, several objects per scene, twins,
relations, counts, rendered words), moving objects, and rendered document pages; every MMEB-V2 meta-task and
modality has a counterpart. Candidates are near-duplicates that differ in one attribute, relation, count,
motion or word (about 3/4 of each list; the rest unrelated), each checked to be false for the query.
Same seed, same bytes (except `generation_seconds` / `workers` in metadata.json).

On-disk layout (paths relative to DIR)::

    metadata.json                      every task: name, layout, path, media_root, meta_task, modality_group,
                                       ranking (local|global), metric (hit@1|ndcg@5), num_queries, num_candidates,
                                       candidates_per_query, chance_percent, in_distribution, mirrors;
                                       every training subset: name, layout, path, media_root, num_rows;
                                       num_files, disk_bytes, generation_seconds, size, seed
    mmeb/<Task>/test-00000-of-00001.parquet      MMEB-V1 eval layout ("mmeb_v1"), image tasks
        columns qry_text (str), qry_img_path (str, "" = none), tgt_text (list[str]), tgt_img_path (list[str]);
        gold = index 0; image paths relative to media_root mmeb/images ("<Task>/00000_q.png").
        Text carries "<|image_1|>\\n<instruction>\\n" inline as MMEB does; text candidates have no instruction.
        SynCount, SynLayout, SynSign (classification), SynVQA (vqa), SynT2I, SynI2T, SynCIR, SynI2I (retrieval;
        SynI2I is out-of-distribution: no training subset), SynGround (grounding; candidates are 40x40 crops)
    mmeb/images/<Task>/*.png           96 x 96 scenes
    text/SynParaphrase/test-00000-of-00001.parquet  same MMEB-V1 columns, text only (img paths "")
    video/<Task>/test-00000-of-00001.parquet     MMEB-V2 video tasks ("mmeb_v2_video")
        columns qry_text, qry_img_path (""), qry_video_path (str, frame folder or ""), tgt_text (list[str]),
        tgt_img_path (list of ""), tgt_video_path (list[str], frame folders or "");
        folder paths relative to media_root video/frames ("<Task>/<video_id>").
        Video text uses "<|video_1|>" as its placeholder, like "<|image_1|>".
        local (gold = index 0): SynMotion (classification), SynVideoQA (vqa), SynMoment (moment retrieval:
        query = full 24-frame video + event, candidates = 8-frame clips);
        global: SynT2V (retrieval) - each row lists only its gold video; the pool is the de-duplicated union of
        all rows' candidates (like MSR-VTT / DiDeMo in MMEB-V2).
    video/frames/<Task>/<video_id>/frame_0000.jpg ...   64 x 64 JPEG frames (16 per video; moment: 24, clips 8)
    visdoc/SynDocs/{queries,corpus,qrels}/test-00000-of-00001.parquet   BEIR layout as ViDoRe on the Hub ("beir")
        queries: query-id (int64), query (str); corpus: corpus-id (int64), image (struct{bytes: PNG, path});
        qrels: query-id, corpus-id, score (int64; graded: 2 = the town's page, 1 = its district summary page).
        Ranked globally over the corpus, scored nDCG@5 (linear gain). Pages are 224 x 288.
    mmeb_train/<Subset>/original-00000-of-00001.parquet   MMEB-train layout ("mmeb_train")
        columns qry, qry_image_path, pos_text, pos_image_path, neg_text, neg_image_path (hard negative = a
        one-change near-duplicate); paths relative to media_root mmeb_train/images. Subsets: every in-distribution
        image task, plus SynDocs (text query -> page image).
    video_train/<Subset>/original-00000-of-00001.parquet  ("mmeb_train_video") the MMEB-train columns plus
        qry_video_path, pos_video_path, neg_video_path (frame folders relative to video_train/frames).
        Subsets: SynMotion, SynT2V, SynVideoQA, SynMoment. Training videos have 8 frames (moment: 24, clips 8).
    mbeir/SynMBEIR_T2I/{queries.jsonl,pool.jsonl,qrels.txt}   M-BEIR layout ("mbeir"): text -> image (task 0)
        qid/did "90:n"; query jsonl: qid, query_txt, query_img_path, query_modality, query_src_content,
        pos_cand_list, neg_cand_list, task_id; pool jsonl: did, txt, img_path, modality, src_content;
        qrels lines "qid 0 did 1 0"; img_path relative to media_root mbeir (holds mbeir_images/).
        Ranked over the task's local pool, scored hit@5 (M-BEIR recall@5). No instructions file.
    text_train/SynParaphrase.jsonl     ("jsonl_triplets") {"query", "positive", "negative", "instruction"} per line

Training and test are disjoint: training examples whose scenes/videos/sentences/page titles (world keys)
occur anywhere in the test split are skipped.
"""
from .generate import ALL_TASKS, SIZES, SizeConfig, generate
from .writers import chance_global_hit1, chance_local_hit1, chance_ndcg, expected_random_ndcg

__all__ = ["generate", "SIZES", "SizeConfig", "ALL_TASKS", "chance_local_hit1", "chance_global_hit1", "chance_ndcg",
           "expected_random_ndcg"]
