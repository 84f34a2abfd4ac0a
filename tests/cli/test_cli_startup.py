"""The CLI's first impressions (issues 17 and 19.9): --version, the tiny sizes in --help, an instant --help,
no third-party import chatter, log lines that do not cut through progress bars."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from uniembed import __version__
from uniembed.cli import info
from uniembed.cli.main import build_parser, main
from uniembed.models.tiny import TINY_SIZES


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"uniembed {__version__}"


def test_model_help_lists_every_tiny_size():
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    text = " ".join(verbs.choices["info"].format_help().split())
    for size in TINY_SIZES:
        assert size in text
    assert "tiny:mini" in text


def test_help_imports_neither_torch_nor_transformers():
    code = ("import sys\nfrom uniembed.cli.main import build_parser\nbuild_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'deepspeed', 'faiss', 'uniembed.data.synth.generate') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_third_party_import_chatter_is_silenced():
    # the CLI's logging (INFO on stderr) and then the two imports that talked on every command
    code = ("import logging\nlogging.basicConfig(level=logging.INFO)\n"
            "from uniembed.quiet import quiet_third_party_logs\nquiet_third_party_logs()\n"
            "import faiss, deepspeed\nlogging.getLogger('DeepSpeed').warning('a real DeepSpeed warning')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    output = done.stdout + done.stderr
    assert "Setting accelerator to CPU" not in output and "AVX512" not in output and "Loading faiss" not in output
    assert "a real DeepSpeed warning" in output  # only the notice is dropped


def test_cli_quiets_chatter_and_routes_logs_around_progress_bars(monkeypatch):
    seen = {}

    def fake_run(args):
        root = logging.getLogger()
        seen["handlers"] = [type(h).__name__ for h in root.handlers]
        return 0

    monkeypatch.setattr(info, "run", fake_run)
    assert main(["info", "--model", "tiny"]) == 0
    assert any("Tqdm" in name for name in seen["handlers"])  # tqdm.write: a log line never splits a bar
    assert logging.getLogger("faiss.loader").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("DeepSpeed").filters


def test_eval_help_imports_neither_torch_nor_transformers():
    code = ("import sys\nfrom uniembed.cli.main import main\n"
            "try:\n    main(['eval', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m in ('torch', 'transformers', 'faiss') or m.startswith('transformers.')), "
            "file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "--suite" in done.stdout and done.stderr.strip().splitlines()[-1] == "[]"
