"""The agent role's ISA-L task, run for real on this machine (local connection).

It is only run where ``libisal2`` is installed already (CI installs it), so the test can
never change the host: there, the task must succeed and change nothing, in check mode and
in a real run, which is what a converged node sees on every later ``site.yml``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agent.lab.deploy import INVENTORY, run_playbook

PLAY = [
    {
        "name": "The codec's ISA-L package",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Run the role's ISA-L task",
                "ansible.builtin.import_role": {"name": "rackcloud_agent", "tasks_from": "isal"},
            }
        ],
    }
]


def installed(package: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    query = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return query.stdout.strip() == "install ok installed"


def system_python_with_apt() -> str | None:
    """The package module on Debian needs python3-apt, which the venv does not have."""
    python = "/usr/bin/python3"
    if not Path(python).exists():
        return None
    probe = subprocess.run([python, "-c", "import apt"], capture_output=True, check=False)
    return python if probe.returncode == 0 else None


def test_the_isal_task_leaves_an_installed_library_alone(tmp_path: Path) -> None:
    if not installed("libisal2"):
        pytest.skip("libisal2 is not installed here (CI installs it); a run would change the host")
    python = system_python_with_apt()
    if python is None:
        pytest.skip("no system python3 with python3-apt for Ansible's package module")
    inventory = {
        "all": {
            "hosts": {"h1": {"ansible_connection": "local", "ansible_python_interpreter": python}},
            "vars": {"rackcloud_agent_isal_package": "libisal2"},
        }
    }
    (tmp_path / INVENTORY).write_text(yaml.safe_dump(inventory), encoding="utf-8")
    playbook = tmp_path / "isal.yml"
    playbook.write_text(yaml.safe_dump(PLAY), encoding="utf-8")
    for check in (True, False):
        recap = run_playbook(tmp_path, str(playbook), check=check)
        counts = recap["hosts"]["h1"]
        assert (counts["failures"], counts["unreachable"], counts["changed"]) == (0, 0, 0)
        task = next(t for t in recap["tasks"] if t["name"] == "Install the ISA-L package")
        assert task["role"] == "rackcloud_agent"
        assert task["changed"] == []
