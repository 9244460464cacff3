"""`jaxpref contracts` sub-app, driven through typer's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jaxpref.contracts.agent import economy
from jaxpref.contracts.cli import app
from jaxpref.contracts.monitoring import ex_monitor, sample_complexity, sc_monitor
from jaxpref.contracts.principal import first_best, second_best

runner = CliRunner()


def test_optimal_json_matches_library():
    result = runner.invoke(app, ["optimal", "--monitor", "ex", "--rho", "0.2", "--n", "150", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {row["contract"]: row for row in report["contracts"]}
    econ = economy(ex_monitor(0.2), 150)
    np.testing.assert_allclose(rows["first best"]["value"], float(first_best(econ).value), rtol=1e-12)
    np.testing.assert_allclose(rows["linear"]["gap"], float(second_best(econ, "linear").gap), rtol=1e-9)
    assert 0.0 < rows["linear"]["gap"] < rows["binary"]["gap"]
    assert "K >= " in rows["binary"]["terms"]


def test_optimal_prints_a_table():
    result = runner.invoke(app, ["optimal", "--monitor", "sc", "--m2", "0.15", "--n", "150"])
    assert result.exit_code == 0, result.output
    assert "first best" in result.output and "linear" in result.output and "binary" in result.output


def test_sample_size_json_matches_library():
    result = runner.invoke(
        app, ["sample-size", "--m2", "0.08", "--rho", "0.02", "--actions", "0.3,0.9", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["rows"]
    expected_sc = sample_complexity(np.array([0.3, 0.9]), sc_monitor(0.08), 0.05, 0.05)
    assert [row["units_sc"] for row in rows] == [float(value) for value in expected_sc]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["optimal", "--monitor", "sc", "--m2", "0.4"], "m2"),
        (["optimal", "--n", "0"], "--n"),
        (["optimal", "--risk-aversion", "-1"], "risk_aversion"),
        (["optimal", "--monitor", "expert"], "expert"),
        (["sample-size", "--actions", "0.3,x"], "--actions"),
        (["sample-size", "--eps", "0"], "eps"),
    ],
)
def test_bad_input_exits_2_with_one_line_message(arguments, message):
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
