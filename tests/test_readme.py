"""The README's set-up commands stay true: CI runs its test command, and its main job works."""

import re
from pathlib import Path

from biounet.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", quickstart, flags=re.S)


def test_quickstart_has_two_commands_and_ci_runs_the_test_command() -> None:
    install, test = readme_commands()
    assert "pip install torch==2.13.0" in install and "pip install -e ." in install
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, "the README's test command must appear verbatim in .ci/run"
    assert ci.index("pip install -q torch==2.13.0") < ci.index(test)


def test_main_job_of_the_readme_runs(capsys) -> None:
    install, _ = readme_commands()
    job = install.split("&&")[-1].split()
    assert job[0] == "biounet"
    assert main(job[1:]) == 0
    assert "31,030,658" in capsys.readouterr().out
