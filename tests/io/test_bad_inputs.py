"""Bad inputs, on the command line and in the library: each is one clear error and changes nothing.

Every case must end with exit code 2 (CLI) or a `DataError` (library) whose message is one line,
with no traceback, no file left behind and every input byte-for-byte unchanged. A failing case
reports its verdict (``traceback``, ``silent wrong``, ``partial file``, ``input changed``,
``multi-line``), so the suite also measures how a version of jaxpref handles bad input.
The CLI runs in-process (typer's CliRunner); nearly every case fails before any fit.
"""

import hashlib
import os
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jaxpref.cli import app
from jaxpref.io.data import DataError, load_preferences
from jaxpref.estimator import fit_attentiveness
from jaxpref.scale.streaming import stream_counts

runner = CliRunner()
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def no_compilation_cache(monkeypatch):
    monkeypatch.setenv("JAXPREF_COMPILATION_CACHE", "off")


GOOD = pd.DataFrame(
    {
        "user": [f"u{i % 10}" for i in range(30)],
        "label": [1, 0, 1] * 10,
        "topic": ["a", "b"] * 15,
        "p": [0.7, 0.8, 0.9] * 10,
    }
)
#: Malformed label tables, written as CSV (and parquet where the type survives).
BAD_TABLES = {
    "label 2": "user,label\na,1\nb,2\n",
    "label -1": "user,label\na,1\nb,-1\n",
    "label 0.5": "user,label\na,1\nb,0.5\n",
    "label text": "user,label\na,A\nb,B\n",
    "label empty": "user,label\na,1\nb,\n",
    "label yes/no": "user,label\na,yes\nb,no\n",
    "user empty": "user,label\na,1\n,0\nb,1\nb,0\n",
    "user blank": "user,label\na,1\n  ,0\n",
    "no rows": "user,label\n",
    "no user column": "who,label\na,1\n",
    "no label column": "user,y\na,1\n",
    "duplicate columns": "user,user,label\na,b,1\n",
    "empty file": "",
    "ragged row": "user,label\na,1\nb,0,7\n",
    "label late text": "user,label\n" + "a,1\n" * 20_000 + "b,x\n",
}


def digest(path: Path) -> str:
    if path.is_dir():
        return "".join(digest(child) for child in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    GOOD.to_csv(root / "good.csv", index=False)
    GOOD.to_parquet(root / "good.parquet", index=False)
    GOOD.to_json(root / "good.jsonl", orient="records", lines=True)
    for name, text in BAD_TABLES.items():
        (root / f"{name.replace(' ', '_').replace('/', '_')}.csv").write_text(text)
    (root / "binary.parquet").write_bytes(os.urandom(256))
    (root / "notes.txt").write_text("user,label\na,1\n")
    (root / "somedir.csv").mkdir()
    (root / "no_parquet_dir").mkdir()
    (root / "no_parquet_dir" / "readme.txt").write_text("nothing")
    pq.write_table(
        pa.table({"user": ["a", "b", "a"], "label": [1, 0, 1], "tags": [[1], [2, 3], []]}),
        root / "listcol.parquet",
    )
    pq.write_table(pa.table({"user": ["a", None, "b"], "label": [1, 0, 1]}), root / "null_user.parquet")
    pq.write_table(pa.table({"user": ["a", "b"], "label": [0.0, float("nan")]}), root / "nan_label.parquet")
    return root


def verdict_cli(arguments, root: Path) -> str:
    """Runs the CLI in ``root`` and classifies what happened to a bad input."""
    before = {path: digest(path) for path in root.iterdir()}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = runner.invoke(app, arguments)
    finally:
        os.chdir(cwd)
    after = set(root.iterdir())
    stderr = result.stderr.strip()
    if result.exception is not None and not isinstance(result.exception, SystemExit) or "Traceback" in stderr:
        return f"traceback: {type(result.exception).__name__}: {result.exception}"
    if result.exit_code == 0:
        return "silent wrong: exit 0"
    if after - set(before):
        for path in after - set(before):
            (path.unlink() if path.is_file() else None)
        return f"partial file: {sorted(p.name for p in after - set(before))}"
    if any(digest(path) != value for path, value in before.items() if path.exists()):
        return "input changed"
    if result.exit_code != 2:
        return f"traceback: exit {result.exit_code}: {stderr[-200:]}"
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    if len(errors) != 1 or not stderr.endswith(errors[0]):  # progress lines may come before it
        return f"multi-line: {stderr[-300:]!r}"
    return "clear error"


def verdict_library(function, *args, **kwargs) -> str:
    try:
        function(*args, **kwargs)
    except DataError as error:
        return "clear error" if len(str(error).splitlines()) == 1 else f"multi-line: {error}"
    except Exception as error:  # noqa: BLE001 - what the suite measures
        return f"traceback: {type(error).__name__}: {error}"
    return "silent wrong: no error"


FIT_OPTIONS = [
    ["--mu", "0.3"],
    ["--mu", "1.2"],
    ["--mu", "0.5"],
    ["--mu", "abc"],
    ["--mu", "a=0.6,b"],
    ["--mu", "=0.6"],
    ["--mu", "0.6,"],
    ["--mu", "nan"],
    ["--mu", "inf"],
    ["--mu", "a=0.6,a=0.7"],
    ["--mu", "0.7", "--mu-prior", "8,2"],
    ["--mu", "free", "--mu-prior", "8,2"],
    ["--mu-prior", "8"],
    ["--mu-prior", "a,b"],
    ["--mu-prior", "-1,2"],
    ["--mu-prior", "0,1"],
    ["--mu-prior", "8,2,3"],
    ["--support", "0.1"],
    ["--support", "a,b"],
    ["--support", "0.1,0.9,0.5"],
    ["--family", "gauss"],
    ["--dtype", "float16"],
    ["--method", "newton"],
    ["--restarts", "0"],
    ["--restarts", "-1"],
    ["--restarts", "x"],
    ["--threshold", "2"],
    ["--threshold", "-0.1"],
    ["--seed", "100000000000000000000000"],
    ["--seed", "-100000000000000000000000"],
    ["--family", "npmle", "--num-grid", "0"],
    ["--user-column", "nope"],
    ["--label-column", "nope"],
    ["--label-column", "user"],
    ["--group-column", "nope"],
    ["--p-column", "nope"],
    ["--p-column", "p", "--group-column", "topic"],
    ["--p-column", "label"],
    ["--group-column", "user"],
    ["--group-column", "topic", "--mu", "0.6,0.7,0.8"],
    ["--group-column", "topic", "--mu", "a=0.6,c=0.7"],
    ["--group-column", "topic", "--mu", "a=0.6"],
    ["--mu", "a=0.6,b=0.7"],
    ["--p-column", "p", "--mu", "0.7"],
    ["--nope"],
    ["--family"],
]


@pytest.mark.parametrize("options", FIT_OPTIONS, ids=[" ".join(o) for o in FIT_OPTIONS])
@pytest.mark.parametrize("command", ["fit", "filter"])
def test_bad_options(files, command, options):
    out = ["--out", "kept.parquet"] if command == "filter" else []
    assert verdict_cli([command, "good.csv", *out, *options], files) == "clear error"


BAD_FILES = [f"{name.replace(' ', '_').replace('/', '_')}.csv" for name in BAD_TABLES] + [
    "binary.parquet",
    "notes.txt",
    "somedir.csv",
    "no_parquet_dir",
    "missing.csv",
    "null_user.parquet",
    "nan_label.parquet",
    "missing_dir/",
]


@pytest.mark.parametrize("data", BAD_FILES)
@pytest.mark.parametrize("command", ["fit", "filter"])
def test_bad_data_files(files, command, data):
    out = ["--out", "kept.parquet"] if command == "filter" else []
    assert verdict_cli([command, data, *out, "--mu", "0.7"], files) == "clear error"


BAD_OUTPUTS = [
    ["fit", "good.csv", "--mu", "0.7", "--users-out", "missing/u.csv"],
    ["fit", "good.csv", "--mu", "0.7", "--users-out", "somedir.csv"],
    ["fit", "good.csv", "--mu", "0.7", "--users-out", "good.csv"],
    ["fit", "good.csv", "--mu", "0.7", "--users-out", "u.txt"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "good.csv"],
    ["filter", "good.parquet", "--mu", "0.7", "--out", "good.parquet"],
    ["filter", "good.parquet", "--mu", "0.7", "--out", "./good.parquet"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "missing/k.jsonl"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "somedir.csv"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "k.txt"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "k.csv", "--rule", "magic"],
    ["filter", "good.csv", "--mu", "0.7", "--out", "k.csv", "--fraction", "2", "--rule", "top_fraction"],
    ["filter", "listcol.parquet", "--mu", "0.7", "--out", "k.csv"],
    ["filter", "good.csv", "--mu", "0.7"],
    ["simulate", "--users", "20", "--out", "missing/s.parquet"],
    ["simulate", "--users", "20", "--out", "s.parquet", "--truth-out", "missing/t.parquet"],
    ["simulate", "--users", "20", "--out", "s.parquet", "--truth-out", "s.parquet"],
    ["simulate", "--users", "20", "--out", "s.txt"],
    ["simulate", "--users", "20", "--out", "somedir.csv"],
    ["simulate", "--users", "0", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--labels", "0", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--family", "cauchy", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--mu", "0.2", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--mu", "x", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--support", "0.1", "--out", "s.parquet"],
    ["simulate", "--users", "20", "--seed", str(2**64), "--out", "s.parquet"],
    ["simulate", "--users", "20"],
    ["simulate", "--users", "many", "--out", "s.parquet"],
    ["fit"],
    ["fit", "good.csv", "extra.csv"],
    ["nonsense"],
    ["compare", "good.csv", "--families", "point,gauss", "--method", "bic"],
    ["compare", "good.csv", "--method", "magic"],
    ["compare", "good.csv", "--mu", "0.7", "--mu-prior", "8,2", "--method", "bic"],
    ["compare", "missing.csv", "--method", "bic"],
    ["contracts", "optimal", "--n", "0"],
    ["contracts", "optimal", "--monitor", "nope"],
    ["contracts", "sample-size", "--actions", "a,b"],
    ["demo", "--seed", str(2**64)],
]


@pytest.mark.parametrize("arguments", BAD_OUTPUTS, ids=[" ".join(a) for a in BAD_OUTPUTS])
def test_bad_outputs_and_commands(files, arguments):
    assert verdict_cli(arguments, files) == "clear error"


LIBRARY_DATA = [
    pd.DataFrame({"user": ["a", "", "b"], "label": [1, 0, 1]}),
    pd.DataFrame({"user": ["a", None, "b"], "label": [1, 0, 1]}),
    pd.DataFrame({"user": ["a", np.nan, "b"], "label": [1, 0, 1]}),
    pd.DataFrame({"user": ["a", "b"], "label": [1, 2]}),
    pd.DataFrame({"user": ["a", "b"], "label": ["1", "0"]}),
    pd.DataFrame({"user": ["a", "b"], "label": [1.0, np.nan]}),
    pd.DataFrame([["a", "b", 1]], columns=["user", "user", "label"]),
    pd.DataFrame({"user": [], "label": []}),
    pd.DataFrame({"who": ["a"], "label": [1]}),
    {"user": ["a", "b"], "label": [1]},
    [("a", 1)],
    42,
]


@pytest.mark.parametrize("data", range(len(LIBRARY_DATA)))
@pytest.mark.parametrize("reader", ["load_preferences", "fit_attentiveness"])
def test_library_bad_data(data, reader):
    function = {"load_preferences": load_preferences, "fit_attentiveness": fit_attentiveness}[reader]
    assert verdict_library(function, LIBRARY_DATA[data]) == "clear error"


@pytest.mark.parametrize("data", BAD_FILES)
@pytest.mark.parametrize("reader", ["load_preferences", "stream_counts"])
def test_library_bad_files(files, data, reader):
    function = {"load_preferences": load_preferences, "stream_counts": stream_counts}[reader]
    before = {path: digest(path) for path in files.iterdir()}
    assert verdict_library(function, str(files / data)) == "clear error"
    assert {path: digest(path) for path in files.iterdir()} == before


LIBRARY_OPTIONS = [
    {"mu": 0.7, "mu_prior": (8, 2)},
    {"mu": "free", "mu_prior": (8, 2)},
    {"mu": {"zzz": 0.7}},
    {"mu": {"a": 0.6, "b": 0.7, "zzz": 0.8}, "group_column": "topic"},
    {"mu": {"a": 0.6}, "group_column": "topic"},
    {"mu": 0.3},
    {"mu": "maybe"},
    {"mu_prior": (8,)},
    {"mu_prior": (-1, 2)},
    {"family": "gauss"},
    {"dtype": "float16"},
    {"method": "newton"},
    {"num_restarts": 0},
    {"threshold": 2.0},
    {"label_column": "user"},
    {"user_column": "label"},
    {"p_column": "p", "group_column": "topic"},
    {"p_column": "p", "mu": 0.7},
]


@pytest.mark.parametrize("options", LIBRARY_OPTIONS, ids=[str(o) for o in LIBRARY_OPTIONS])
def test_library_bad_options(options):
    assert verdict_library(fit_attentiveness, GOOD, **options) == "clear error"


# Hypothesis: malformed tables (a missing or empty id, or a bad label, anywhere) and option strings.
ids = st.text(string.ascii_letters + string.digits, min_size=1, max_size=4)


@st.composite
def malformed_tables(draw):
    rows = draw(st.lists(st.tuples(ids, st.sampled_from(["0", "1"])), min_size=1, max_size=30))
    position = draw(st.integers(0, len(rows)))
    flaw = draw(st.sampled_from(["empty id", "bad label", "text label", "blank label"]))
    user, _ = rows[min(position, len(rows) - 1)]
    bad_row = {
        "empty id": ("", "1"),
        "bad label": (user, draw(st.sampled_from(["2", "-1", "0.5", "7"]))),
        "text label": (user, draw(st.text(string.ascii_letters, min_size=1, max_size=3))),
        "blank label": (user, ""),
    }[flaw]
    rows.insert(position, bad_row)
    return "user,label\n" + "".join(f"{u},{y}\n" for u, y in rows), position


@SETTINGS
@given(table=malformed_tables())
def test_malformed_tables_are_clear_errors_everywhere(tmp_path, table):
    text, _ = table
    path = tmp_path / "bad.csv"
    path.write_text(text)
    assert verdict_library(load_preferences, str(path)) == "clear error"
    assert verdict_library(stream_counts, str(path), progress=False) == "clear error"
    assert verdict_cli(["fit", "bad.csv", "--mu", "0.7"], tmp_path) == "clear error"


bad_numbers = st.one_of(st.floats(max_value=0.5), st.floats(min_value=1.0), st.just(float("nan")))
bad_mu_text = st.one_of(
    bad_numbers.map(repr),
    st.text(string.ascii_letters + ",=", min_size=1, max_size=8).filter(lambda t: t != "free"),
    st.lists(bad_numbers.map(repr), min_size=2, max_size=3).map(",".join),
)


@SETTINGS
@given(mu=bad_mu_text, command=st.sampled_from(["fit", "filter"]))
def test_bad_mu_strings_are_clear_errors(files, mu, command):
    out = ["--out", "kept.parquet"] if command == "filter" else []
    assert verdict_cli([command, "good.csv", *out, "--mu", mu], files) == "clear error"


@SETTINGS
@given(
    prior=st.one_of(
        st.text(string.ascii_letters + ",", min_size=1, max_size=6),
        st.tuples(st.floats(max_value=0), st.floats()).map(lambda ab: f"{ab[0]!r},{ab[1]!r}"),
    )
)
def test_bad_mu_prior_strings_are_clear_errors(files, prior):
    assert verdict_cli(["fit", "good.csv", "--mu-prior", prior], files) == "clear error"
