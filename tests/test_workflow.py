"""The GitHub Pages workflow: its study command parses and it publishes the --out folder.

The workflow file is read with a small line reader instead of a YAML
parser, so the test needs no dependency beyond the project's. The reader
understands what pages.yml uses: `run:` on one line or as a `|` block, and
`with: path:` under a `uses:` step.
"""

import shlex
from pathlib import Path

import pytest

import run_study
from conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "pages.yml"
UPLOAD_ACTION = "actions/upload-pages-artifact@"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_value(line: str) -> tuple[str, str]:
    """Split a `key: value` line, or a step's first `- key: value` line."""
    key, _, value = line.strip().removeprefix("- ").partition(":")
    return key.strip(), value.strip()


def run_commands(lines: list[str]) -> list[str]:
    """Return every shell command line of the workflow's `run:` keys."""
    commands = []
    for number, line in enumerate(lines):
        key, value = _key_value(line)
        if key != "run":
            continue
        if value not in ("|", ">"):
            commands.append(value)
            continue
        for following in lines[number + 1:]:
            if following.strip() and _indent(following) <= _indent(line):
                break
            if following.strip():
                commands.append(following.strip())
    return commands


def step_input(lines: list[str], action: str, name: str) -> str | None:
    """Return input `name` of the step that uses `action` (an owner/name@ prefix)."""
    for number, line in enumerate(lines):
        key, value = _key_value(line)
        if key != "uses" or not value.startswith(action):
            continue
        step_indent = _indent(line)
        for following in lines[number + 1:]:
            if following.lstrip().startswith("- ") and _indent(following) <= step_indent:
                break
            key, value = _key_value(following)
            if key == name:
                return value.strip("'\"")
    return None


def study_argv(command: str) -> list[str]:
    """Return the arguments after run_study.py in a shell command line."""
    words = shlex.split(command)
    position = next(index for index, word in enumerate(words) if word.endswith("run_study.py"))
    return words[position + 1:]


@pytest.fixture(scope="module")
def workflow_lines():
    return WORKFLOW.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def study_commands(workflow_lines):
    return [command for command in run_commands(workflow_lines) if "run_study.py" in command]


def test_workflow_runs_study(study_commands):
    assert len(study_commands) == 1


def test_workflow_study_options_parse(study_commands):
    for command in study_commands:
        try:
            run_study.parse_args(study_argv(command))
        except SystemExit as error:
            pytest.fail(f"run_study.py rejects the workflow's options in {command!r} "
                        f"(exit status {error.code})")


def test_workflow_uploads_out_folder(workflow_lines, study_commands):
    args = run_study.parse_args(study_argv(study_commands[0]))
    path = step_input(workflow_lines, UPLOAD_ACTION, "path")
    assert path is not None, f"no step uses {UPLOAD_ACTION} with a path"
    assert Path(path) == args.out


def test_workflow_checks_nojekyll(workflow_lines, study_commands):
    args = run_study.parse_args(study_argv(study_commands[0]))
    assert f"test -f {args.out / '.nojekyll'}" in run_commands(workflow_lines)


def test_workflow_uploads_hidden_files(workflow_lines):
    assert step_input(workflow_lines, UPLOAD_ACTION, "include-hidden-files") == "true"


def test_reader_parses_block_and_inputs():
    lines = [
        "    steps:",
        "      - name: Build",
        "        run: |",
        "          echo one",
        "",
        "          python run_study.py --out 'my site'",
        "      - run: echo two",
        "      - uses: actions/upload-pages-artifact@v5",
        "        with:",
        "          path: 'my site'",
        "      - uses: actions/other@v1",
        "        with:",
        "          name: other",
    ]
    assert run_commands(lines) == ["echo one", "python run_study.py --out 'my site'",
                                   "echo two"]
    assert study_argv(run_commands(lines)[1]) == ["--out", "my site"]
    assert step_input(lines, UPLOAD_ACTION, "path") == "my site"
    assert step_input(lines, UPLOAD_ACTION, "name") is None
