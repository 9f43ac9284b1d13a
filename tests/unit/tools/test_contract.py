"""``python -m tools.contract``: names each disagreement with the contract, and writes the suite's part."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tools import contract as tool


@pytest.fixture(name="copies")
def copies_fixture(tmp_path: Path) -> tuple[Path, Path]:
    suite, sql = tmp_path / "suite.json", tmp_path / "features.sql"
    shutil.copy2(tool.SUITE, suite)
    shutil.copy2(tool.SQL, sql)
    return suite, sql


def test_the_repository_agrees_with_its_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main([]) == 0
    assert capsys.readouterr().err == ""


def test_disagreements_are_named_and_written_back(
    copies: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    suite, sql = copies
    document = json.loads(suite.read_text())
    document["expectations"] = [
        e
        for e in document["expectations"]
        if e["kwargs"].get("column") != "is_foreign" or "type_list" not in e["kwargs"]
    ]
    suite.write_text(json.dumps(document, indent=2) + "\n")
    sql.write_text(sql.read_text().replace('AS "channel",', 'AS "sales_channel",'))

    assert tool.main(["--suite", str(suite), "--sql", str(sql)]) == 1
    err = capsys.readouterr().err
    assert "expect_column_values_to_be_in_type_list(is_foreign) is missing" in err
    assert f"{sql}: output columns" in err and "not in the contract ['sales_channel']" in err

    sql.write_text(tool.SQL.read_text())
    assert tool.main(["--write", "--suite", str(suite), "--sql", str(sql)]) == 0
    assert json.loads(suite.read_text()) == json.loads(tool.SUITE.read_text())
