"""The README's quick-start commands stay true: CI runs the same test command."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text, flags=re.S)


def test_readme_starts_with_two_commands():
    cmds = _readme_commands()
    assert len(cmds) >= 2
    run, test = cmds[0], cmds[1]
    assert run.rstrip().endswith("&& imssim") and "pip install ." in run
    assert "pytest" in test and '".[test]"' in test


def test_ci_runs_the_readme_test_command():
    test_cmd = _readme_commands()[1].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()


def test_readme_names_the_system_packages_ci_installs():
    run = _readme_commands()[0]
    ci = (REPO / ".ci" / "run").read_text()
    for pkg in re.findall(r"\b(lib[\w.+-]+)", run):
        assert pkg in ci, f"{pkg} named in the README but not installed by .ci/run"


def test_readme_commands_install_what_a_fresh_debian_lacks():
    run, test = _readme_commands()[:2]
    for cmd in (run, test):  # Debian's python3 has no venv module without python3-venv
        assert cmd.startswith("sudo apt-get update && sudo apt-get install -y python3-venv ")
        assert "libgl1" in cmd and "libxcb-cursor0" in cmd
    assert " xvfb " in test  # the window tests need an X server
