"""The README's Python examples run as written, and its test command is CI's."""

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_quickstart_test_command_is_what_ci_runs():
    quickstart = re.search(r"## Quickstart.*?```bash\n(.*?)```", README, flags=re.S).group(1).strip().splitlines()
    assert len(quickstart) == 2
    ci_lines = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == quickstart[1]


def test_readme_examples_run():
    namespace: dict = {}
    for block in PYTHON_BLOCKS:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["fits"].state.mu.shape == (100, 1)
    assert len(namespace["kept"]) > 0


def command_lines(block: str) -> list[str]:
    """The block's commands, continuation lines joined and trailing comments dropped."""
    lines = block.replace("\\\n", " ").splitlines()
    return [re.split(r"\s+#", line)[0].strip() for line in lines if line.strip()]


def test_readme_cli_block_runs_as_written_in_an_empty_directory(tmp_path, monkeypatch):
    import shlex

    from typer.testing import CliRunner

    from jaxpref.cli import app

    block = re.search(r"## Command line.*?```bash\n(.*?)```", README, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JAXPREF_COMPILATION_CACHE", "off")
    runner = CliRunner()
    lines = command_lines(block)
    assert len(lines) >= 10
    for line in lines:
        for command in line.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["mkdir", "-p"]:
                Path(words[2]).mkdir(parents=True, exist_ok=True)
                continue
            assert words[0] == "jaxpref", line
            result = runner.invoke(app, words[1:])
            assert result.exit_code == 0, f"{line}\n{result.output}"
