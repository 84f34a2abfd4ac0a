"""Embedding stores and FAISS indexes shared by evaluation (global pools), mining and `uniembed search`."""
from .faiss_index import ShardedIndex, build_sharded_index, exact_topk, gpu_available, merge_topk
from .store import embeddings_model_id, iter_shards, read_embeddings, read_manifest, write_embeddings

__all__ = ["ShardedIndex", "build_sharded_index", "exact_topk", "gpu_available", "merge_topk",
           "embeddings_model_id", "iter_shards", "read_embeddings", "read_manifest", "write_embeddings"]
