"""The library/app split (issue 22): `import uniembed`, `Embedder.tiny()` and `encode` work with every extra's
packages unimportable, and a feature whose extra is missing says which `pip install 'uniembed[...]'` brings it."""
from __future__ import annotations

import json
import subprocess
import sys

# every extra's top-level packages (pyproject.toml [project.optional-dependencies]), plus accelerate, which
# loading does not need (peft installs it anyway)
BLOCKED = ("fastapi", "starlette", "pydantic", "uvicorn", "prometheus_client", "faiss", "pyarrow", "tensorboard",
           "matplotlib", "sentence_transformers", "accelerate", "deepspeed")

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Hide(importlib.abc.MetaPathFinder):
    '''A finder that sees no blocked package, as if it were not installed (find_spec answers None).'''
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return None
        return self.inner.find_spec(name, path, target)

    def find_distributions(self, *args, **kwargs):  # importlib.metadata asks the same finders
        return getattr(self.inner, "find_distributions", lambda *a, **k: [])(*args, **kwargs)

    def invalidate_caches(self):
        getattr(self.inner, "invalidate_caches", lambda: None)()

sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
"""

SCRIPT = BLOCKER + """
import contextlib, io, json, tempfile
import numpy as np
import uniembed
from uniembed import Embedder

model = Embedder.tiny()
vectors = model.encode(["a red circle", "a blue square"], truncate_dim=16)
with tempfile.TemporaryDirectory() as folder:  # a saved checkpoint loads through the one door, too
    model.save_pretrained(folder)
    again = Embedder.from_pretrained(folder, device="auto").encode(["a red circle"], truncate_dim=16)
errors = {}
for verb, argv in {"serve": ["serve", "--model", "tiny"], "synth": ["synth", "--out", folder + "-synth"]}.items():
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        from uniembed.cli.main import main
        code = main(argv)
    errors[verb] = [code, stderr.getvalue()]
for name, call in {"create_app": lambda: uniembed.serving.create_app, "faiss": lambda: __import__(
        "uniembed.index.faiss_index", fromlist=["x"]).exact_topk(np.eye(2), np.eye(2), 1)}.items():
    import uniembed.serving
    try:
        call()
    except ImportError as exc:
        errors[name] = [type(exc).__name__, str(exc)]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"shape": list(vectors.shape), "same": bool(np.allclose(vectors[:1], again, atol=1e-5)),
                  "errors": errors, "loaded": loaded}))
"""


def test_core_encodes_without_any_extra_and_missing_extras_name_the_fix():
    done = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(BLOCKED)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"] == [2, 16] and result["same"]
    assert result["loaded"] == []
    code, message = result["errors"]["serve"]
    assert code == 2
    assert ("uniembed serve: error: uniembed serve needs fastapi, uvicorn, prometheus_client, which are not "
            "installed: pip install 'uniembed[serve]'") in message
    assert result["errors"]["synth"][0] == 2 and "pip install 'uniembed[eval]'" in result["errors"]["synth"][1]
    assert result["errors"]["create_app"] == [
        "MissingExtra", "the uniembed server needs fastapi, which is not installed: pip install 'uniembed[serve]'"]
    assert result["errors"]["faiss"][0] == "MissingExtra" and "pip install 'uniembed[index]'" in result["errors"]["faiss"][1]


def test_only_an_extras_own_package_becomes_missing_extra():
    import pytest

    from uniembed.extras import MissingExtra, import_optional

    assert import_optional("numpy", "anything").__name__ == "numpy"
    with pytest.raises(ModuleNotFoundError) as raised:  # not an extra's package: the original error stays
        import_optional("uniembed_no_such_package", "a test")
    assert not isinstance(raised.value, MissingExtra)
