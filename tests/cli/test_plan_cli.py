from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from werkplaats.cli.app import app
from werkplaats.plan.serde import plan_from_json, plan_hash

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    out = runner.invoke(app, ["--help"])
    assert out.exit_code == 0
    for cmd in ("demo", "bench", "plan"):
        assert cmd in out.output


def test_example_plan_explains_validates_and_hashes(tmp_path: Path) -> None:
    out = runner.invoke(app, ["plan", "example"])
    assert out.exit_code == 0
    path = tmp_path / "plan.json"
    path.write_text(out.output)
    explained = runner.invoke(app, ["plan", "explain", str(path)])
    assert explained.exit_code == 0
    assert "ggd/meldingen: bsn, gemeente, ziekte, geboortedatum, ziekenhuisopname" in explained.output
    assert runner.invoke(app, ["plan", "validate", str(path)]).exit_code == 0
    hashed = runner.invoke(app, ["plan", "hash", str(path)])
    assert hashed.output.strip() == plan_hash(plan_from_json(out.output))


def test_row_level_and_malformed_plans_are_refused_with_exit_code_2(tmp_path: Path) -> None:
    row_level = tmp_path / "rows.json"
    row_level.write_text(json.dumps({"format": "werkplaats.plan/1", "root": {"op": "source", "dataset": "x"},
                                     "disclosure": {"min_group_size": 10}}))  # fmt: skip
    out = runner.invoke(app, ["plan", "explain", str(row_level)])
    assert out.exit_code == 2
    assert "row-level" in out.output
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    out = runner.invoke(app, ["plan", "validate", str(broken)])
    assert out.exit_code == 2
    assert "not valid JSON" in out.output


def test_schema_command_prints_the_published_schema() -> None:
    out = runner.invoke(app, ["plan", "schema"])
    assert json.loads(out.output)["title"].startswith("werkplaats analysis plan")
