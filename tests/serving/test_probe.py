"""`uniembed probe` against real `uniembed serve` processes on 127.0.0.1: a server of the same model and profile
matches on every row (with its API key; without it, a 401 that says to pass --api-key); a control server started under a wrong profile is flagged (exit 1); an unreachable
server, an HTTP error and a wrong dimension (a stdlib stub server) exit 2 with a message that says so.
Only loopback traffic is sent."""
from __future__ import annotations

import http.server
import json
import threading

import pytest
from serving_helpers import free_port, served

from uniembed.cli.main import main
from uniembed.probe import MATCH_THRESHOLD, PROBE_INSTRUCTION, ProbeCase, probe_cases, server_base


def _serve_options(*extra: str) -> list[str]:
    return ["--model", "tiny", "--threads", "1", "--log-level", "warning", "--served-model-name", "probe-me", *extra]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    options = _serve_options("--api-key", "sesame")
    with served(options, tmp_path_factory.mktemp("same") / "server.log") as (url, _):
        yield url


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    """The same weights served under another published profile: its prompts and pooling differ."""
    with served(_serve_options("--profile", "vlm2vec-v1"), tmp_path_factory.mktemp("control") / "server.log") as (url, _):
        yield url


def test_probe_set_covers_each_modality_with_and_without_instruction():
    cases = probe_cases()
    kinds = {(case.item().modality_name, case.instruction is not None) for case in cases if case.form == "messages"}
    assert kinds == {(name, flag) for name in ("text", "image", "text+image", "video") for flag in (False, True)}
    plain = [case for case in cases if case.form == "input"]
    assert [case.body("m") for case in plain] == [{"model": "m", "input": [plain[0].text]}]
    with_instruction = next(case for case in cases if case.name == "text+image + instruction").body(None)
    assert "model" not in with_instruction
    system, user = with_instruction["messages"]
    assert system == {"role": "system", "content": PROBE_INSTRUCTION}
    assert [part["type"] for part in user["content"]] == ["image_url", "text"]
    assert user["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert server_base("http://h:1/v1/") == "http://h:1" and server_base("https://h") == "https://h"


def test_probe_matches_a_server_of_the_same_model(server, capsys, monkeypatch):
    monkeypatch.delenv("UNIEMBED_API_KEY", raising=False)
    assert main(["probe", "--model", "tiny", "--server", server]) == 2  # the server wants a key
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "pass --api-key" in err
    assert main(["probe", "--model", "tiny", "--server", server, "--api-key", "sesame"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.endswith(("  match", "  DIFFERS"))]
    assert len(rows) == len(probe_cases()) and all(row.endswith(" match") for row in rows), out
    assert "(model probe-me)" in out and f"match at >= {MATCH_THRESHOLD}" in out
    assert f"{len(rows)}/{len(rows)} rows match" in out


def test_probe_flags_a_server_under_the_wrong_profile(control, capsys):
    assert main(["probe", "--model", "tiny", "--server", control + "/v1"]) == 1
    out = capsys.readouterr().out
    assert out.count("DIFFERS") == len(probe_cases()), out
    assert "the server embeds differently" in out
    # the same server probed under its own profile matches: the verdict is about the profile, not the server
    assert main(["probe", "--model", "tiny", "--profile", "vlm2vec-v1", "--server", control]) == 0


def test_unreachable_server_is_a_clear_error(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["probe", "--model", "tiny", "--server", url]) == 2
    err = capsys.readouterr().err
    assert "cannot reach" in err and url in err and "is the server running" in err


class _Stub(http.server.BaseHTTPRequestHandler):
    """/v1/models lists a model; /v1/embeddings answers 3-dimensional vectors, or HTTP 500 for model 'broken'."""

    def do_GET(self):  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "stub"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("model") == "broken":
            self._send(500, {"error": {"message": "engine crashed"}})
        else:
            self._send(200, {"object": "list", "data": [{"index": 0, "embedding": [0.1, 0.2, 0.3]}]})

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_wrong_dimension_and_http_errors_exit_non_zero(stub, capsys):
    assert main(["probe", "--model", "tiny", "--server", stub]) == 2
    err = capsys.readouterr().err
    assert "dimension 3" in err and "the model's has 64" in err and "probe row 'text'" in err
    assert main(["probe", "--model", "tiny", "--server", stub, "--served-model-name", "broken"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 500" in err and "engine crashed" in err


def test_a_case_is_one_item():
    case = ProbeCase("video", "messages", video=b"x", instruction="find it")
    assert case.item().instruction == "find it"
    assert case.body(None)["messages"][1]["content"] == [{"type": "video_url",
                                                          "video_url": {"url": "data:video/mp4;base64,eA=="}}]
