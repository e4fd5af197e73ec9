"""`werkplaats plan ...` run through the CLI on real plan files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from werkplaats.cli.app import app
from werkplaats.plan import nodes as n
from werkplaats.plan.serde import canonical_json, plan_from_json, plan_hash

runner = CliRunner()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = runner.invoke(app, ["plan", "example"])
    assert out.exit_code == 0, out.output
    path = tmp_path_factory.mktemp("plans") / "plan.json"
    path.write_text(out.stdout)
    return path


def test_example_prints_a_checked_plan_as_canonical_json(example: Path) -> None:
    text = example.read_text().strip()
    plan = plan_from_json(text)
    assert canonical_json(plan) == text
    assert isinstance(plan.root, n.Aggregate)
    assert all(s.columns for s in n.sources(plan.root))  # NB: checked and pruned: each source lists what it reads


def test_explain_names_every_source_with_the_columns_it_reads(example: Path) -> None:
    out = runner.invoke(app, ["plan", "explain", str(example)])
    assert out.exit_code == 0, out.output
    plan = plan_from_json(example.read_text())
    assert out.stdout.startswith(f"Analysis plan {plan_hash(plan)[:16]}…")
    for s in n.sources(plan.root):
        assert f"  - {s.dataset}: {', '.join(s.columns or ())}\n" in out.stdout
    assert "ggd/meldingen: bsn, gemeente, ziekte, geboortedatum, ziekenhuisopname" in out.stdout
    assert f"fewer than {plan.min_group_size} rows are suppressed" in out.stdout


def test_hash_prints_the_plan_hash_of_the_file(example: Path) -> None:
    out = runner.invoke(app, ["plan", "hash", str(example)])
    assert out.exit_code == 0, out.output
    assert out.stdout == plan_hash(plan_from_json(example.read_text())) + "\n"
    # the hash is of the canonical form, not of the file's bytes: spacing does not change it
    spaced = example.with_name("spaced.json")
    spaced.write_text(json.dumps(json.loads(example.read_text()), indent=2))
    assert runner.invoke(app, ["plan", "hash", str(spaced)]).stdout == out.stdout


def test_validate_accepts_the_example(example: Path) -> None:
    out = runner.invoke(app, ["plan", "validate", str(example)])
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith(f"{example}: valid werkplaats.plan/1")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "plan is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        ('{"format": "werkplaats.plan/1", "root": {"op": "aggregate", "input": {"op": "drop_table"}, "keys": [],'
         ' "aggs": [{"name": "n", "func": "len"}]}, "disclosure": {"min_group_size": 10}}',
         "plan does not match werkplaats.plan/1 at root/input: unknown op 'drop_table'; expected one of ['aggr"),
        ('{"format": "werkplaats.plan/1", "root": {"op": "source", "dataset": "x"},'
         ' "disclosure": {"min_group_size": 10}}', "the plan's output would be row-level: it ends in 'source'"),
    ],
    ids=["not-json", "unknown-op", "row-level"],
)  # fmt: skip
@pytest.mark.parametrize("command", ["validate", "explain", "hash"])
def test_broken_plans_are_refused_with_a_clear_message_and_exit_code_2(
    tmp_path: Path, command: str, text: str, message: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    out = runner.invoke(app, ["plan", command, str(path)])
    assert out.exit_code == 2
    assert out.stdout == ""
    assert out.stderr.startswith(f"error: {path}: {message}")


def test_schema_command_prints_the_published_schema() -> None:
    out = runner.invoke(app, ["plan", "schema"])
    assert json.loads(out.output)["title"].startswith("werkplaats analysis plan")
