"""`metallbctl --version` names the installed metallb-py, with or without a command."""

from __future__ import annotations

import importlib.metadata

import pytest

from metallb_operator.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv", [["--version"], ["--version", "validate"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == \
        f"metallbctl {importlib.metadata.version('metallb-py')}"
