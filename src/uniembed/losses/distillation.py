"""Distillation objectives (docs/methods.md §3): relational text distillation and re-ranker (listwise) distillation.

Both are KL(teacher || student) over a softmax per row, averaged over rows. The teacher side is detached:
teachers are frozen (precomputed embeddings, or a previous model's fused scores).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .contrastive import _compute_dtype


def relational_distillation_loss(
    student_q: Tensor,
    student_c: Tensor,
    teacher_q: Tensor,
    teacher_c: Tensor,
    temperature: float,
) -> Tensor:
    """UniME stage 1: make the student's query-candidate similarity distribution match the teacher's.

    For each query row i: KL( softmax_j(t_q,i . t_c,j / T) || softmax_j(s_q,i . s_c,j / T) ), mean over rows.
    All inputs are L2-normalised here; the teacher's dimension may differ from the student's, but both sides
    must have the same number of queries (B) and candidates (N).
    """
    _check_pair("student", student_q, student_c)
    _check_pair("teacher", teacher_q, teacher_c)
    if (student_q.shape[0], student_c.shape[0]) != (teacher_q.shape[0], teacher_c.shape[0]):
        raise ValueError(
            f"student has {student_q.shape[0]} queries x {student_c.shape[0]} candidates but the teacher has "
            f"{teacher_q.shape[0]} x {teacher_c.shape[0]}; embed the same batch of pairs with both models")
    temperature = _positive_temperature(temperature)
    dtype = _compute_dtype(student_q.dtype)
    student_logits = _similarities(student_q, student_c, dtype) / temperature
    teacher_logits = _similarities(teacher_q.detach(), teacher_c.detach(), dtype) / temperature
    return _row_kl(student_logits, teacher_logits)


def listwise_distillation_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """U-MARVEL stage 3: mean over rows of KL( softmax(teacher_logits) || softmax(student_logits) ).

    Both are B x K logits over the same K candidates per query; callers divide by their temperatures first.
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must both be B x K with the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}; score the same K candidates per "
            "query with both")
    dtype = _compute_dtype(student_logits.dtype)
    return _row_kl(student_logits.to(dtype), teacher_logits.detach().to(dtype))


def _row_kl(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """KL(softmax(teacher) || softmax(student)) per row, averaged over rows, in log space for stability."""
    log_p_teacher = torch.log_softmax(teacher_logits, dim=-1)
    log_p_student = torch.log_softmax(student_logits, dim=-1)
    p_teacher = log_p_teacher.exp()
    # 0 * log 0 counts as 0, so a teacher may rule candidates out with -inf logits.
    terms = torch.where(p_teacher > 0, p_teacher * (log_p_teacher - log_p_student), torch.zeros_like(p_teacher))
    return terms.sum(dim=-1).mean()


def _similarities(q: Tensor, c: Tensor, dtype: torch.dtype) -> Tensor:
    return F.normalize(q.to(dtype), dim=-1) @ F.normalize(c.to(dtype), dim=-1).T


def _check_pair(side: str, q: Tensor, c: Tensor) -> None:
    if q.dim() != 2 or c.dim() != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(
            f"{side} queries and candidates must be 2-D with the same dimension, got {tuple(q.shape)} and "
            f"{tuple(c.shape)}; embed the {side}'s queries and candidates with the same {side} model")


def _positive_temperature(temperature) -> float | Tensor:
    if isinstance(temperature, Tensor):
        return temperature
    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature} (e.g. 0.05)")
    return temperature
