"""Token pooling: shrink a multi-vector embedding by clustering its token vectors and keeping one mean per cluster.

The method is colpali-engine's `HierarchicalTokenPooler` (illuin-tech/colpali @ 9be8f1972d6d2ab6b47454e068e10191ce32c219,
colpali_engine/compression/token_pooling/hierarchical_token_pooling.py). The facts taken from it:
- the clustered observations are the rows of the cosine-distance matrix `1 - T @ T.T` (line 118-119);
- scipy `linkage(..., metric="euclidean", method="ward")` over those rows (line 121);
- at most `max(n // pool_factor, 1)` clusters, cut with `fcluster(Z, t=..., criterion="maxclust")` (lines 122-123);
- each non-empty cluster becomes the mean of its tokens, L2-normalised again, in cluster-label order (lines 129-141);
- pool factor 1 returns the tokens unchanged (lines 107-109).
Unlike colpali-engine, an item with 0 or 1 token is returned as it is instead of raising. Because the rows
of a distance matrix are clustered as observations, scipy warns that the input "looks suspiciously like an
uncondensed distance matrix"; that is the method as published, so the warning is silenced here.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError


def pooled_count(n_tokens: int, pool_factor: int) -> int:
    """The most clusters pooling `n_tokens` by `pool_factor` keeps: max(n // pool_factor, 1) (0 for no tokens)."""
    return 0 if n_tokens == 0 else max(n_tokens // pool_factor, 1)


def check_pool_factor(pool_factor: int) -> int:
    """`pool_factor` as an int when it is an integer >= 1 (--pool-factor), else a ConfigError."""
    if isinstance(pool_factor, bool) or not isinstance(pool_factor, (int, np.integer)) or pool_factor < 1:
        raise ConfigError(f"--pool-factor must be an integer >= 1 (1 keeps every token), got {pool_factor!r}")
    return int(pool_factor)


def pool_tokens(tokens: np.ndarray, pool_factor: int) -> np.ndarray:
    """One item's n x D L2-normalised tokens pooled to at most `pooled_count(n, pool_factor)` float32 rows."""
    from scipy.cluster.hierarchy import ClusterWarning, fcluster, linkage

    pool_factor = check_pool_factor(pool_factor)
    tokens = np.asarray(tokens, dtype=np.float32)
    if tokens.ndim != 2:
        raise ValueError(f"pool_tokens takes one item's n x D token matrix, got shape {tokens.shape}")
    if pool_factor == 1 or len(tokens) <= 1:
        return tokens
    distances = 1.0 - (tokens @ tokens.T).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClusterWarning)
        tree = linkage(distances, method="ward", metric="euclidean")
    labels = fcluster(tree, t=pooled_count(len(tokens), pool_factor), criterion="maxclust")
    pooled = np.stack([tokens[labels == label].mean(axis=0) for label in np.unique(labels)])
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def pool_items(items: Sequence[np.ndarray], pool_factor: int) -> list[np.ndarray]:
    """`pool_tokens` of every item, in order."""
    return [pool_tokens(item, pool_factor) for item in items]
