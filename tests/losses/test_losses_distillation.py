"""Distillation losses against explicit per-row KL sums."""
from __future__ import annotations

import math

import pytest
import torch

from uniembed.errors import InputError
from uniembed.losses import listwise_distillation_loss, relational_distillation_loss


def softmax_list(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def kl_rows(teacher_rows, student_rows):
    """mean_i sum_j p_ij log(p_ij / q_ij), p from the teacher, q from the student."""
    total = 0.0
    for t_row, s_row in zip(teacher_rows, student_rows):
        p, q = softmax_list(t_row), softmax_list(s_row)
        total += sum(pj * math.log(pj / qj) for pj, qj in zip(p, q))
    return total / len(teacher_rows)


def cosine_rows(a, b):
    a = [row / row.norm() for row in a.double()]
    b = [row / row.norm() for row in b.double()]
    return [[float(x @ y) for y in b] for x in a]


def test_relational_matches_explicit_kl_with_different_dimensions():
    g = torch.Generator().manual_seed(0)
    student_q, student_c = torch.randn(4, 8, generator=g), torch.randn(6, 8, generator=g)
    teacher_q, teacher_c = torch.randn(4, 16, generator=g), torch.randn(6, 16, generator=g)
    temperature = 0.2
    loss = relational_distillation_loss(student_q, student_c, teacher_q, teacher_c, temperature)
    teacher = [[v / temperature for v in row] for row in cosine_rows(teacher_q, teacher_c)]
    student = [[v / temperature for v in row] for row in cosine_rows(student_q, student_c)]
    assert float(loss) == pytest.approx(kl_rows(teacher, student), rel=1e-5)


def test_relational_gradient_reaches_the_student_only():
    g = torch.Generator().manual_seed(1)
    student_q = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    student_c = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    teacher_q = torch.randn(3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    teacher_c = torch.randn(3, 7, generator=g, dtype=torch.float64, requires_grad=True)
    relational_distillation_loss(student_q, student_c, teacher_q, teacher_c, 0.1).backward()
    assert student_q.grad.abs().sum() > 0 and student_c.grad.abs().sum() > 0
    assert teacher_q.grad is None and teacher_c.grad is None


def test_relational_is_zero_when_student_equals_teacher_up_to_scale():
    x, y = torch.randn(5, 4), torch.randn(5, 4)
    loss = relational_distillation_loss(3 * x, y, x, 0.5 * y, 0.05)
    assert abs(float(loss)) < 1e-5


def test_listwise_matches_explicit_kl_and_direction():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    student = torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 0.0]])
    expected = kl_rows(teacher.tolist(), student.tolist())
    assert float(listwise_distillation_loss(student, teacher)) == pytest.approx(expected, rel=1e-6)
    reverse = kl_rows(student.tolist(), teacher.tolist())
    assert abs(expected - reverse) > 1e-3  # the direction is observable


def test_listwise_gradient_is_softmax_difference():
    teacher = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    student = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    listwise_distillation_loss(student, teacher).backward()
    # d KL(p || softmax(u)) / du = softmax(u) - p
    expected = torch.softmax(student.detach(), -1) - torch.softmax(teacher, -1)
    torch.testing.assert_close(student.grad, expected)


def test_listwise_teacher_may_exclude_candidates_with_minus_infinity():
    teacher = torch.tensor([[1.0, float("-inf"), 0.0]])
    student = torch.tensor([[0.5, 3.0, 0.0]], requires_grad=True)
    loss = listwise_distillation_loss(student, teacher)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_bfloat16_inputs_are_computed_in_float32():
    teacher, student = torch.randn(4, 10), torch.randn(4, 10)
    loss = listwise_distillation_loss(student.bfloat16(), teacher.bfloat16())
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(listwise_distillation_loss(student, teacher)), rel=5e-2)


def test_bad_shapes_raise_value_error_not_input_error():  # programmer misuse of a tensor API
    with pytest.raises(ValueError, match="same shape"):
        listwise_distillation_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="teacher has 3 x 5"):
        relational_distillation_loss(torch.randn(4, 8), torch.randn(5, 8), torch.randn(3, 2), torch.randn(5, 2), 0.1)
    with pytest.raises(ValueError, match="same dimension"):
        relational_distillation_loss(torch.randn(4, 8), torch.randn(4, 7), torch.randn(4, 2), torch.randn(4, 2), 0.1)
    with pytest.raises(ValueError, match="positive"):
        relational_distillation_loss(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 2), torch.randn(4, 2), 0)
    with pytest.raises(ValueError) as caught:
        listwise_distillation_loss(torch.randn(2, 3), torch.randn(2, 4))
    assert not isinstance(caught.value, InputError)  # InputError is for users' data
