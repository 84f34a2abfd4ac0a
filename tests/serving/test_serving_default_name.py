"""`uniembed serve --model DIR` answers to `model="uniembed"`, the name docs/serving.md's client passes, whatever DIR
(or the `model` symlink of a run) is called (issue 19, point 3: the symlink's target name was served)."""
from __future__ import annotations

from fastapi.testclient import TestClient

from uniembed.cli.main import build_parser
from uniembed.cli.serve import build_config
from uniembed.serving import create_app


def test_a_run_model_symlink_is_served_as_uniembed(tmp_path, tiny_embedder):
    tiny_embedder.save_pretrained(tmp_path / "run" / "stage0-digits")
    (tmp_path / "run" / "model").symlink_to("stage0-digits")
    args = build_parser().parse_args(["serve", "--model", str(tmp_path / "run" / "model")])
    config = build_config(args)
    assert config.served_model_name == "uniembed"
    with TestClient(create_app(tiny_embedder, config)) as client:
        ok = client.post("/v1/embeddings", json={"model": "uniembed", "input": ["a red circle"]})
        assert ok.status_code == 200 and ok.json()["model"] == "uniembed"
        assert client.get("/v1/models").json()["data"][0]["id"] == "uniembed"
        assert client.post("/v1/embeddings", json={"model": "stage0-digits", "input": ["x"]}).status_code == 404
