"""Every playbook parses against both inventories, and every role documents its variables.

ansible-lint (production profile, offline, only-builtins) and yamllint run in make lint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.lab.deploy import ANSIBLE_CFG, PLAYBOOKS, REPO

ROLES = REPO / "roles"
PLAYBOOK_NAMES = sorted(p.name for p in PLAYBOOKS.glob("*.yml"))
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def test_the_day_two_playbooks_are_all_there() -> None:
    expected = {"site.yml", "add_node.yml", "rolling_update.yml", "purge.yml"}
    assert expected | {"healthcheck.yml", "drill.yml"} <= set(PLAYBOOK_NAMES)


@pytest.mark.parametrize("inventory", ["production.sample.yml", "lab.example.yml"])
@pytest.mark.parametrize("playbook", PLAYBOOK_NAMES)
def test_playbook_syntax(playbook: str, inventory: str) -> None:
    done = subprocess.run(
        [
            ANSIBLE_PLAYBOOK,
            "--syntax-check",
            "-i",
            str(REPO / "inventory" / inventory),
            str(PLAYBOOKS / playbook),
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"ANSIBLE_CONFIG": str(ANSIBLE_CFG)},
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir()))
def test_every_role_variable_is_prefixed_and_documented(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    prefix = f"{role}_" if role != "rackcloud" else "rackcloud_"
    assert all(name.startswith(prefix) for name in defaults), sorted(defaults)
    assert set(defaults) <= set(options), sorted(set(defaults) - set(options))
    assert all(opt.get("description") for opt in options.values())
