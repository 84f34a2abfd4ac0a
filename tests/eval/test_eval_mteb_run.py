"""The real mteb (>= 2.26) on uniembed: `MtebEncoder` carries its `ModelMeta` and loader (mteb's registry and
`get_model` build it), mteb's offline mock tasks run on `Embedder.tiny()` with no task error, and mteb's own
`OpenAIAPIEncodeWrapper` evaluates a real `uniembed serve` process on 127.0.0.1 with the same scores as the
in-process encoder. No mocks of mteb; skipped when mteb is not installed (`make test` installs it)."""
from __future__ import annotations

import importlib.metadata

import pytest
from serving_helpers import served

mteb = pytest.importorskip("mteb", reason="mteb is not installed: pip install 'uniembed[mteb]' (the dev extra has it)")
from mteb.mocks.mock_run import ALL_MOCK_TASK_TEST_GRID, is_dependency_error  # noqa: E402
from mteb.models.model_implementations import MODEL_REGISTRY  # noqa: E402

from uniembed.eval.mteb_adapter import MtebEncoder, load_mteb_encoder, register_with_mteb  # noqa: E402

# one text, one image->text retrieval and one image classification task of mteb's offline grid
FEW = ("MockRetrievalTask", "MockAny2AnyRetrievalI2T", "MockImageClassification")


def _tasks(names=FEW):
    """Fresh instances: mteb's evaluate converts a task's data in place, so a second run of the same object differs."""
    return [type(task)() for task in ALL_MOCK_TASK_TEST_GRID if task.metadata.name in names]


def _scores(results) -> dict[str, float]:
    assert not results.exceptions, results.exceptions
    return {result.task_name: float(result.get_score()) for result in results.task_results}


@pytest.fixture(scope="module")
def encoder():
    return load_mteb_encoder("uniembed/tiny", model="tiny")


def test_encoder_carries_its_model_meta_and_loader(encoder):
    meta = encoder.mteb_model_meta
    assert meta.name == "uniembed/tiny" and meta.embed_dim == 64 and meta.modalities == ["text", "image", "video"]
    assert meta.similarity_fn_name.value == "cosine" and meta.max_tokens == 512 and meta.n_parameters > 0
    assert meta.loader is load_mteb_encoder and meta.loader_kwargs["model"] == "tiny"
    rebuilt = meta.loader(meta.name, revision=meta.revision, **meta.loader_kwargs)  # as mteb's load_model calls it
    assert isinstance(rebuilt, MtebEncoder) and rebuilt.mteb_model_meta.name == meta.name
    profiled = MtebEncoder(load_mteb_encoder("uniembed/q3", model="tiny:qwen3_vl", profile="qwen3-vl-embedding").embedder,
                           spec="tiny:qwen3_vl")  # the profile travels from the model's config to the loader
    assert profiled.mteb_model_meta.loader_kwargs["profile"] == "qwen3-vl-embedding"
    with pytest.raises(ValueError, match="no loader"):
        register_with_mteb(MtebEncoder(encoder.embedder, name="uniembed/in-memory").mteb_model_meta)


def test_mteb_get_model_builds_a_registered_encoder(encoder):
    missing = [name for name in ("torchvision", "torchcodec") if not _installed(name)]
    if missing:  # mteb checks an image/video model's extras by package metadata before calling the loader
        pytest.skip(f"mteb.get_model wants mteb[image,video] installed for an image/video model; missing {missing} "
                    "(no torchvision/torchcodec wheel loads next to the CPU torch here)")
    register_with_mteb(encoder.mteb_model_meta)
    try:
        built = mteb.get_model("uniembed/tiny")
    finally:
        MODEL_REGISTRY.pop("uniembed/tiny", None)
    assert isinstance(built, MtebEncoder) and built.embedder.dimension == 64


def test_mteb_evaluates_mock_tasks(encoder):
    scores = _scores(mteb.evaluate(encoder, _tasks(), cache=None, show_progress_bar=False))
    assert sorted(scores) == sorted(FEW)


@pytest.mark.slow
def test_mock_run_passes_the_offline_grid(encoder):
    """mteb's own check of a model implementation. On torch 2.13+cpu the 7 video tasks stop at mteb's
    torchcodec import (a dependency error mteb itself counts as skipped): the PyPI torchcodec wheel needs CUDA
    libraries (libnvrtc) and system FFmpeg."""
    results = mteb.mock_run(encoder)
    ran = {name: status for name, status in results.items() if status is not None}
    passed = [name for name, status in ran.items() if not hasattr(status, "exception")]
    skipped = [name for name, status in ran.items() if hasattr(status, "exception") and is_dependency_error(status)]
    failed = {name: status.exception for name, status in ran.items()
              if hasattr(status, "exception") and not is_dependency_error(status)}
    assert not failed and results.all_passed
    assert len(passed) >= 43 and all("Video" in name for name in skipped), (passed, skipped)
    modality = dict((row[1], row[0]) for row in results.modality_summary())
    assert modality["text"].startswith("✓") and modality["image"].startswith("✓")


def test_openai_wrapper_evaluates_a_running_server(encoder, tmp_path):
    from mteb.models.openai_wrappers import OpenAIAPIEncodeWrapper

    options = ["--model", "tiny", "--threads", "1", "--log-level", "warning"]
    with served(options, tmp_path / "server.log") as (url, _):
        wrapper = OpenAIAPIEncodeWrapper(endpoint_url=url, model_name="uniembed", modalities=["text", "image"])
        remote = _scores(mteb.evaluate(wrapper, _tasks(), cache=None, show_progress_bar=False))
    local = _scores(mteb.evaluate(encoder, _tasks(), cache=None, show_progress_bar=False))
    assert remote == pytest.approx(local, abs=1e-4)


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
