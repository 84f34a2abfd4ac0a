"""The README and the docs run as written: their ```bash and ```python blocks are executed against the tiny model.

The convention (also in the README's Development section):

- The pages are README.md, every docs/*.md and benchmarks/README.md (PAGES). Each page runs as its own test, in
  its own temporary folder: a page never relies on files another page's blocks made. A page whose examples
  need files (images, a saved model, an index) starts with the small block that makes them, repeated on each
  page that needs it.
- Blocks fenced ```bash or ```python are executed, in page order, in the page's folder, shared by all of its
  blocks (a later block may use what an earlier one of the same page made), as a user following the page from
  a clone's root would: the folder holds a link `recipes` to the repository's recipes/ and nothing else.
- In a bash block `uniembed` is this checkout's CLI (`sys.executable -m uniembed.cli.main`, with the
  checkout's src/ first on PYTHONPATH) and `python` is `sys.executable`; bash runs with `-e -o pipefail`.
  A process a block leaves running in the background (`uniembed serve ... &`) is stopped when the test ends.
- Blocks run as written: no text is substituted. Examples use the random tiny model (`--model tiny`,
  `Embedder.tiny()`, or a directory an earlier block saved) and files the blocks make themselves.
- Anything that cannot run here (a real checkpoint, real benchmark data, a GPU, a web server's config, a long
  training run, the `make demo` / `make test` commands that are this suite) is fenced ```text (or ```nginx,
  ```yaml, ...): only bash and python fences execute, and every fence must name its language.
- A line `<!-- readme-test: slow -->` just before a block runs it only in the slow test (`make test-all`, or
  `pytest -m slow tests/test_readme.py`), which runs every block; the default test skips the slow ones, so
  no fast block may depend on a slow one.

A failure names each failing block by its file and the line of its opening fence, with the block and its output.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
EXECUTED = {"bash", "python"}
SLOW_MARKER = "<!-- readme-test: slow -->"
BLOCK_TIMEOUT_S = 300
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence in its page
    language: str
    code: str
    slow: bool
    page: str = "README.md"  # the page's path relative to the repository

    @property
    def label(self) -> str:
        return f"{self.page} line {self.line} (```{self.language}{' slow' if self.slow else ''})"


def _name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def page_blocks(page: Path) -> list[Block]:
    """The fenced blocks of one page of the repository, each labelled with the page's path."""
    return readme_blocks(page.read_text(encoding="utf-8"), _name(page))


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every fenced block of a Markdown text, with its language and whether the slow marker precedes it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if not opening:
            number += 1
            continue
        indent, fence, info = opening.groups()
        body: list[str] = []
        end = number + 1
        while end < len(lines) and not (lines[end].strip().startswith(fence) and lines[end].strip().strip(fence[0]) == ""):
            body.append(lines[end][len(indent):] if lines[end].startswith(indent) else lines[end])
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page} line {number + 1}: fence {fence}{info} is never closed")
        previous = next((lines[i].strip() for i in range(number - 1, -1, -1) if lines[i].strip()), "")
        blocks.append(Block(number + 1, info.strip().split(" ")[0].lower(), "\n".join(body) + "\n",
                            previous == SLOW_MARKER, page))
        number = end + 1
    return blocks


def _environment(folder: Path) -> dict[str, str]:
    bin_dir = folder / ".readme-bin"
    bin_dir.mkdir()
    script = bin_dir / "uniembed"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m uniembed.cli.main "$@"\n')
    script.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO / "src"), env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _run(block: Block, folder: Path, env: dict[str, str], groups: list[int]) -> str | None:
    """Run one block; None when it succeeds, else the failure report."""
    suffix = "sh" if block.language == "bash" else "py"
    script = folder / f".readme-line-{block.line}.{suffix}"  # one folder per page: the line is unique
    script.write_text(block.code)
    command = ["bash", "-e", "-o", "pipefail", str(script)] if block.language == "bash" else [sys.executable, str(script)]
    log = folder / f".readme-line-{block.line}.log"
    with open(log, "w") as output:  # a file, not a pipe: a server left in the background must not hold it open
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        groups.append(process.pid)
        try:
            code = process.wait(timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _stop(process.pid)
            code = None
    if code == 0:
        return None
    text = log.read_text(errors="replace")
    why = f"timed out after {BLOCK_TIMEOUT_S} s" if code is None else f"exited with status {code}"
    numbered = "\n".join(f"{block.line + i:5d} | {line}" for i, line in enumerate(block.code.splitlines(), 1))
    return (f"{block.label} {why}.\n--- block ({block.page} line numbers) ---\n{numbered}\n"
            f"--- output (last 4000 characters; script line k is {block.page} line {block.line} + k) ---\n"
            f"{text[-4000:]}")


def _stop(group: int) -> None:
    try:
        os.killpg(group, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _ports_in_use(blocks: list[Block]) -> list[int]:
    """The `--port N` of the blocks that something else on this machine already listens on."""
    busy = []
    for port in sorted({int(p) for b in blocks for p in re.findall(r"--port\s+(\d+)", b.code)}):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


def _run_page(page: Path, folder: Path, include_slow: bool) -> None:
    (folder / "recipes").symlink_to(REPO / "recipes")
    env = _environment(folder)
    blocks = [b for b in page_blocks(page) if b.language in EXECUTED]
    blocks = [b for b in blocks if include_slow or not b.slow]
    busy = _ports_in_use(blocks)
    assert not busy, (f"port(s) {busy} named by {_name(page)}'s serving example are in use on this machine: "
                      "stop that server")
    groups: list[int] = []
    failures = []
    try:
        for block in blocks:
            failure = _run(block, folder, env, groups)
            if failure:
                failures.append(failure)
    finally:
        for group in groups:
            _stop(group)
    if failures:
        pytest.fail(f"{len(failures)} block(s) of {_name(page)} failed (the first may cause the later ones); ran in "
                    f"{folder}\n\n" + "\n\n".join(failures), pytrace=False)


def test_every_page_is_found():
    """The docs pages exist (a moved docs/ folder would otherwise leave only the README tested)."""
    assert len(PAGES) > 3 and all(page.is_file() for page in PAGES), PAGES


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_fence_names_its_language(page):
    """Authors choose: ```bash / ```python run, ```text (or another language) does not; a bare fence is a mistake."""
    bare = [b.line for b in page_blocks(page) if not b.language]
    assert not bare, f"{_name(page)} fences without a language at line(s) {bare}: write ```bash, ```python or ```text"


def test_block_parser_reads_languages_lines_and_the_slow_marker():
    text = "intro\n```bash\necho hi\n```\n\n<!-- readme-test: slow -->\n```python\nprint(1)\n```\n```text\nx\n```\n"
    assert [(b.line, b.language, b.code, b.slow) for b in readme_blocks(text)] == [
        (2, "bash", "echo hi\n", False), (7, "python", "print(1)\n", True), (10, "text", "x\n", False)]
    assert readme_blocks(text, "docs/x.md")[1].label == "docs/x.md line 7 (```python slow)"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_readme_blocks_run_as_written(page, tmp_path):
    _run_page(page, tmp_path, include_slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_readme_blocks_run_as_written_including_slow_ones(page, tmp_path):
    _run_page(page, tmp_path, include_slow=True)


def test_the_readme_mixture_example_uses_only_keys_the_loader_knows(tmp_path):
    """The mixture YAML of the docs (not executed: its data is not here) passes the loader's key checks: each
    source, loaded alone, fails only on its missing files (InputError), never on its keys (ConfigError)."""
    import yaml

    from uniembed.data import load_mixture
    from uniembed.errors import InputError

    examples = [yaml.safe_load(b.code) for page in PAGES for b in page_blocks(page)
                if b.language == "yaml" and "sources:" in b.code]
    assert examples, "no page has a mixture example (a ```yaml block with 'sources:')"
    for mixture in examples:
        for source in mixture["sources"]:
            with pytest.raises(InputError, match="not found"):
                load_mixture({**mixture, "sources": [source]}, base_dir=tmp_path)
