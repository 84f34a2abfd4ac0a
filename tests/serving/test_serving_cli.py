"""`uniembed serve` flags map onto ServerConfig; the safe defaults hold; the start-up heap is frozen before serving."""
from __future__ import annotations

import gc

import pytest

from uniembed.cli.main import build_parser
from uniembed.cli.serve import build_config
from uniembed.errors import ConfigError


def _config(*flags):
    args = build_parser().parse_args(["serve", "--model", "tiny", *flags])
    return args, build_config(args)


def test_defaults_are_safe():
    args, config = _config()
    assert args.host == "127.0.0.1" and args.port == 8080
    assert config.batching and config.allow_local_files is None and not config.allow_remote_media
    assert config.served_model_name == "uniembed"  # the name docs/serving.md's client example passes


def test_flags_reach_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("UNIEMBED_API_KEY", raising=False)
    _, config = _config("--api-key", "k", "--allow-local-files", str(tmp_path), "--allow-remote-media",
                        "--no-batching", "--max-batch-tokens", "999", "--max-items-per-request", "7",
                        "--max-body-mb", "1", "--max-concurrency", "3", "--request-timeout", "2.5",
                        "--served-model-name", "mine")
    assert config.api_key == "k" and config.allow_local_files == tmp_path.resolve() and config.allow_remote_media
    assert not config.batching and config.max_batch_tokens == 999 and config.max_items_per_request == 7
    assert config.max_body_bytes == 1024 * 1024 and config.max_concurrency == 3 and config.request_timeout_s == 2.5
    assert config.served_model_name == "mine"


def test_hostile_input_flags_reach_the_config():
    _, config = _config("--remote-allow", "10.0.0.0/8,media.internal", "--remote-allow", "::1", "--max-redirects",
                        "1", "--body-timeout", "2", "--min-body-rate", "1000", "--max-request-megapixels", "5",
                        "--max-text-chars", "100")
    assert config.remote_allow == ("10.0.0.0/8", "media.internal", "::1") and config.max_redirects == 1
    assert config.body_timeout_s == 2 and config.min_body_rate == 1000
    assert config.max_request_pixels == 5_000_000 and config.max_text_chars == 100
    with pytest.raises(ConfigError, match="neither a CIDR nor a host name"):
        _config("--remote-allow", "http://x/")


def test_bad_flag_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        _config("--max-concurrency", "0")
    with pytest.raises(ConfigError):
        _config("--allow-local-files", str(tmp_path / "missing"))


def test_the_long_lane_flag_reaches_the_config():
    assert _config()[1].long_item_tokens == 512
    assert _config("--long-item-tokens", "2048")[1].long_item_tokens == 2048
    assert _config("--long-item-tokens", "0")[1].long_item_tokens is None  # one lane for every item
    with pytest.raises(ConfigError, match="long_item_tokens"):
        _config("--long-item-tokens", "-1")


def test_the_server_freezes_its_start_up_heap_before_serving(tiny_embedder, monkeypatch):
    # a full collection would otherwise walk every import and model object (300-460 ms, all threads stopped)
    import uvicorn

    from uniembed.cli import serve

    frozen: list[int] = []
    monkeypatch.setattr(serve, "load_model", lambda *args, **kwargs: tiny_embedder)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: frozen.append(gc.get_freeze_count()))
    gc.unfreeze()
    try:
        assert serve.run(build_parser().parse_args(["serve", "--model", "tiny"])) == 0
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000
