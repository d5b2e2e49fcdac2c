"""The Ansible plugins: the ``netns`` connection and the ``rackcloud_recap`` callback.

Every test runs a real ``ansible-playbook`` against a throwaway ansible.cfg that points at
``plugins/``. The recap tests use the local connection and run anywhere; the netns tests
need root and make their own namespace (``rcplugtest-<random>``), removed afterwards.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
if not ANSIBLE_PLAYBOOK.exists():
    ANSIBLE_PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"

SECRET = "hunter2-do-not-log"


def write_cfg(base: Path) -> Path:
    cfg = base / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"connection_plugins = {PLUGINS / 'connection'}\n"
        f"callback_plugins = {PLUGINS / 'callback'}\n"
        "callbacks_enabled = rackcloud_recap\n"
        "host_key_checking = False\n"
        "retry_files_enabled = False\n"
        f"local_tmp = {base / 'ansible-local'}\n"
        f"remote_tmp = {base / 'ansible-remote'}\n"
        "\n"
        "[connection]\n"
        "pipelining = True\n"
    )
    return cfg


def run_playbook(
    base: Path, inventory: str, playbook: str, recap: Path | None
) -> subprocess.CompletedProcess[str]:
    cfg = write_cfg(base)
    (base / "inventory.ini").write_text(inventory)
    (base / "playbook.yml").write_text(playbook)
    env = {k: v for k, v in os.environ.items() if k != "RACKCLOUD_RECAP"}
    env.update(ANSIBLE_CONFIG=str(cfg), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if recap is not None:
        env["RACKCLOUD_RECAP"] = str(recap)
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(base / "inventory.ini"), str(base / "playbook.yml")],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def load_recap(path: Path) -> dict[str, Any]:
    assert path.exists(), f"no recap at {path}"
    return json.loads(path.read_text())


def task(recap: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [t for t in recap["tasks"] if t["name"] == name]
    assert len(matches) == 1, f"task {name!r} in {recap['tasks']}"
    return matches[0]


def stats(**counts: int) -> dict[str, int]:
    keys = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
    return {key: counts.get(key, 0) for key in keys}


def changed_tasks(recap: dict[str, Any]) -> list[str]:
    return [t["name"] for t in recap["tasks"] if t["changed"]]


# -- the recap, on the local connection --------------------------------------------------

LOCAL_INVENTORY = f"""\
[lab]
h1 ansible_connection=local ansible_python_interpreter={sys.executable}
h2 ansible_connection=local ansible_python_interpreter={sys.executable}
"""

RECAP_PLAYBOOK = f"""\
- name: recap play
  hosts: lab
  gather_facts: false
  tasks:
    - name: always changes
      ansible.builtin.command: "true"
      changed_when: true
      notify: a handler
    - name: secret failure
      ansible.builtin.command: "sh -c 'echo {SECRET}; echo {SECRET} >&2; exit 3'"
      no_log: true
      ignore_errors: true
    - name: slow one
      ansible.builtin.command: sleep 1.5
      changed_when: false
    - name: never runs
      ansible.builtin.debug:
        msg: skipped
      when: false
    - name: plain failure on h2
      ansible.builtin.fail:
        msg: h2 said no
      when: inventory_hostname == 'h2'
      ignore_errors: true
  handlers:
    - name: a handler
      ansible.builtin.command: "true"
"""


def test_recap_local(tmp_path: Path) -> None:
    recap_path = tmp_path / "out" / "recap.json"
    recap_path.parent.mkdir()
    proc = run_playbook(tmp_path, LOCAL_INVENTORY, RECAP_PLAYBOOK, recap_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = load_recap(recap_path)
    # the write is atomic: nothing but the recap is left beside it
    assert [p.name for p in recap_path.parent.iterdir()] == ["recap.json"]

    assert recap["playbook"].endswith("playbook.yml")
    assert recap["seconds"] >= 1.5

    # Ansible's own stats: an ignored failure counts as ok and ignored, and the failed
    # command as changed too; h2 also ignores its 'fail'.
    assert recap["hosts"] == {
        "h1": {
            "ok": 4,
            "changed": 3,
            "failures": 0,
            "unreachable": 0,
            "skipped": 2,
            "rescued": 0,
            "ignored": 1,
        },
        "h2": {
            "ok": 5,
            "changed": 3,
            "failures": 0,
            "unreachable": 0,
            "skipped": 1,
            "rescued": 0,
            "ignored": 2,
        },
    }

    assert [t["name"] for t in recap["tasks"]] == [
        "always changes",
        "secret failure",
        "slow one",
        "never runs",
        "plain failure on h2",
        "a handler",
    ]
    assert all(t["role"] is None for t in recap["tasks"])
    assert all(t["hosts"] == 2 for t in recap["tasks"])
    assert changed_tasks(recap) == ["always changes", "a handler"]
    assert task(recap, "always changes")["changed"] == ["h1", "h2"]
    assert task(recap, "a handler")["changed"] == ["h1", "h2"]

    slow = task(recap, "slow one")
    assert slow["seconds"] >= 1.5
    assert recap["longest_task"] == {"name": "slow one", "seconds": slow["seconds"]}
    assert sum(t["seconds"] for t in recap["tasks"]) <= recap["seconds"]

    failed = sorted(recap["failed"], key=lambda f: (f["task"], f["host"]))
    assert [(f["host"], f["task"], f["msg"]) for f in failed] == [
        ("h2", "plain failure on h2", "h2 said no"),
        ("h1", "secret failure", "censored"),
        ("h2", "secret failure", "censored"),
    ]
    assert SECRET not in recap_path.read_text()


def test_recap_needs_the_env_var(tmp_path: Path) -> None:
    proc = run_playbook(tmp_path, LOCAL_INVENTORY, RECAP_PLAYBOOK, None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list(tmp_path.rglob("*.json"))


# -- the netns connection (root) ---------------------------------------------------------


def ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"ip {' '.join(args)}: {proc.stderr}"


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"rcplugtest-{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


NETNS_PLAYBOOK = """\
- name: netns play
  hosts: lab
  gather_facts: false
  tasks:
    - name: list links
      ansible.builtin.command: ip -o link
      register: links
      changed_when: false
    - name: save links
      ansible.builtin.copy:
        content: "{{{{ links.stdout }}}}\\n"
        dest: "{work}/links.txt"
        mode: "0600"
    - name: copy a file
      ansible.builtin.copy:
        content: "hello from {{{{ inventory_hostname }}}}\\n"
        dest: "{work}/hello.txt"
        mode: "0640"
    - name: read it back
      ansible.builtin.slurp:
        src: "{work}/hello.txt"
      register: hello
    - name: check what was read
      ansible.builtin.assert:
        that:
          - (hello.content | b64decode) == 'hello from n1\\n'
    - name: fetch it
      ansible.builtin.fetch:
        src: "{work}/hello.txt"
        dest: "{work}/fetched/"
    - name: stat it
      ansible.builtin.stat:
        path: "{work}/hello.txt"
      register: hello_stat
    - name: check its mode
      ansible.builtin.assert:
        that:
          - hello_stat.stat.exists
          - hello_stat.stat.mode == '0640'
"""


@pytest.mark.root
@needs_root
def test_netns_connection_runs_inside_the_namespace(tmp_path: Path, netns: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    inventory = (
        "[lab]\n"
        f"n1 ansible_connection=netns ansible_host={netns} "
        f"ansible_python_interpreter={sys.executable}\n"
    )
    playbook = NETNS_PLAYBOOK.format(work=work)

    first = tmp_path / "first.json"
    proc = run_playbook(tmp_path, inventory, playbook, first)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # only the namespace's loopback is seen: the command ran inside it, not on the host
    links = [line for line in (work / "links.txt").read_text().splitlines() if line]
    assert len(links) == 1, links
    assert links[0].split(":")[1].strip() == "lo"

    hello = work / "hello.txt"
    assert hello.read_text() == "hello from n1\n"
    assert stat.S_IMODE(hello.stat().st_mode) == 0o640
    assert (work / "fetched" / "n1" / str(hello).lstrip("/")).read_text() == "hello from n1\n"

    recap = load_recap(first)
    assert recap["hosts"]["n1"]["failures"] == 0
    assert recap["hosts"]["n1"]["unreachable"] == 0
    assert changed_tasks(recap) == ["save links", "copy a file", "fetch it"]

    second = tmp_path / "second.json"
    proc = run_playbook(tmp_path, inventory, playbook, second)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = load_recap(second)
    assert recap["hosts"]["n1"]["changed"] == 0
    assert task(recap, "copy a file")["changed"] == []
    assert changed_tasks(recap) == []


@pytest.mark.root
@needs_root
def test_netns_connection_refuses_missing_namespace_and_ip(tmp_path: Path, netns: str) -> None:
    missing = f"{netns}-missing"
    inventory = (
        "[lab]\n"
        f"gone ansible_connection=netns ansible_host={missing} "
        f"ansible_python_interpreter={sys.executable}\n"
        f"noip ansible_connection=netns ansible_netns_name={netns} "
        f"ansible_netns_exe=/nonexistent/ip ansible_python_interpreter={sys.executable}\n"
        f"fine ansible_connection=netns ansible_host=ignored ansible_netns_name={netns} "
        f"ansible_python_interpreter={sys.executable}\n"
    )
    playbook = """\
- name: refusals
  hosts: lab
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
"""
    recap_path = tmp_path / "recap.json"
    proc = run_playbook(tmp_path, inventory, playbook, recap_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # 4: some hosts unreachable
    assert f"Network namespace '{missing}' does not exist" in proc.stdout

    recap = load_recap(recap_path)
    assert recap["hosts"]["gone"]["unreachable"] == 1
    assert recap["hosts"]["noip"]["unreachable"] == 1
    assert recap["hosts"]["fine"] == {
        "ok": 1,
        "changed": 0,
        "failures": 0,
        "unreachable": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }
    msgs = {f["host"]: f["msg"] for f in recap["failed"]}
    assert set(msgs) == {"gone", "noip"}
    assert f"Network namespace '{missing}' does not exist (no /run/netns/{missing})" in msgs["gone"]
    assert "cannot find the command '/nonexistent/ip'" in msgs["noip"]
    assert task(recap, "ping")["hosts"] == 3
