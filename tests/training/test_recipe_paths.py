"""A recipe's `data:` and a mixture's source paths resolve against their own file, from any working directory."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data_fixtures import jsonl
from uniembed.data import load_mixture
from uniembed.errors import ConfigError, InputError
from uniembed.training.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]


def _stage_mixture(recipe, index=0):
    stage = recipe.stages[index]
    return load_mixture(stage.data, base_dir=stage.data_dir)


@pytest.fixture
def project(tmp_path):
    """recipes/r.yaml -> data/mix.yaml (relative to the recipe) -> pairs.jsonl (relative to the mixture)."""
    recipes = tmp_path / "project" / "recipes"
    jsonl(recipes / "data" / "pairs.jsonl", [{"query": f"q{i}", "positive": f"p{i}"} for i in range(3)])
    (recipes / "data" / "mix.yaml").write_text(yaml.safe_dump(
        {"sources": [{"name": "pairs", "format": "jsonl", "path": "pairs.jsonl"}]}))
    stage = {"name": "s", "data": "data/mix.yaml", "max_steps": 1}
    inline = {"name": "t", "data": {"sources": [{"name": "p", "format": "jsonl", "path": "data/pairs.jsonl"}]}, "max_steps": 1}
    (recipes / "r.yaml").write_text(yaml.safe_dump({"name": "r", "model": "tiny", "stages": [stage, inline]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return recipes, elsewhere


@pytest.mark.parametrize("cwd", ["project", "recipes", "elsewhere"])
def test_recipe_data_resolves_against_the_recipe_folder_from_any_directory(project, cwd, monkeypatch):
    recipes, elsewhere = project
    folder = {"project": recipes.parent, "recipes": recipes, "elsewhere": elsewhere}[cwd]
    monkeypatch.chdir(folder)
    recipe = load_recipe(os.path.relpath(recipes / "r.yaml", folder))
    assert len(_stage_mixture(recipe, 0).sources["pairs"]) == 3  # file: data/mix.yaml beside the recipe
    assert len(_stage_mixture(recipe, 1).sources["p"]) == 3      # inline mapping: paths from the recipe too


def test_a_set_value_resolves_against_the_working_directory(project, monkeypatch):
    recipes, elsewhere = project
    jsonl(elsewhere / "mine.jsonl", [{"query": "a", "positive": "b"}])
    (elsewhere / "mine.yaml").write_text(yaml.safe_dump({"sources": [{"format": "jsonl", "path": "mine.jsonl"}]}))
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe(recipes / "r.yaml", ["stages.0.data=mine.yaml"])
    assert recipe.stages[0].data_dir == str(elsewhere) and recipe.stages[1].data_dir == str(recipes)
    assert len(_stage_mixture(recipe, 0).sources["mine"]) == 1


def test_a_missing_mixture_file_names_where_it_looked(project, monkeypatch):
    recipes, elsewhere = project
    (recipes / "data" / "mix.yaml").unlink()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as error:
        _stage_mixture(load_recipe(recipes / "r.yaml"))
    message = str(error.value)
    assert "'data/mix.yaml' not found" in message
    assert f"looked for '{recipes / 'data' / 'mix.yaml'}'" in message and f"relative to '{recipes}'" in message


def test_shipped_recipe_finds_its_mixture_and_names_the_resolved_data_path(monkeypatch, tmp_path):
    """From the repository root and from elsewhere, recipes/vlm2vec.yaml reaches recipes/data/mmeb_train.yaml;
    what is missing then is MMEB-train itself, named with the folder the mixture's paths resolve against."""
    for cwd in (REPO, tmp_path):
        monkeypatch.chdir(cwd)
        recipe = load_recipe(os.path.relpath(REPO / "recipes" / "vlm2vec.yaml", cwd))
        with pytest.raises(InputError) as error:
            _stage_mixture(recipe)
        message = str(error.value)
        assert "not found" in message and "mixture file" not in message
        assert str(REPO / "recipes" / "data" / "../../data/MMEB-train/ImageNet_1K") in message
        assert f"resolves against the mixture's folder '{REPO / 'recipes' / 'data'}'" in message


def test_uniembed_train_from_the_repository_root_reaches_the_mixture(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "uniembed.cli.main", "train", "recipes/vlm2vec.yaml",
                             "--out", str(tmp_path / "run"), "--set", "model=tiny", "--no-progress"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "mixture file" not in result.stderr and "MMEB-train/ImageNet_1K" in result.stderr
    assert "resolves against the mixture's folder" in result.stderr
