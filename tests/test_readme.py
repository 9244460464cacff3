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
