"""The playbooks against a real netns lab rack: converge, rerun, check mode, add a node,
roll an upgrade through it, purge it twice (issue 10; docs/operations.md).

One lab serves the module and the tests run in file order, each starting from the rack
the one before left: that is the life of a rack, and it keeps the suite's time sane.
Seconds are measured by ``bench/deploy.py``, not asserted here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import LabError, RackError
from agent.lab import Lab, netns
from agent.lab.deploy import NodePaths, source_release
from agent.wire import ClusterStatus
from tests.helpers import rack, wait_until

NETNS_REASON = netns.available()
pytestmark = [
    pytest.mark.root,
    pytest.mark.integration,
    pytest.mark.skipif(NETNS_REASON is not None, reason=f"netns lab unavailable: {NETNS_REASON}"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = Lab(tmp_path_factory.mktemp("deploy") / "lab")
    lab.up(4, "netns", deploy="ansible", timeout=60.0)
    try:
        yield lab
    finally:
        lab.down()


def changed(recap: dict[str, Any]) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in recap["hosts"].items()}


def changed_tasks(recap: dict[str, Any]) -> list[str]:
    return [f"{t['name']} on {t['changed']}" for t in recap["tasks"] if t["changed"]]


def view(lab: Lab) -> ClusterStatus:
    return lab.status_of("n1", timeout=2.0)


def incarnations(lab: Lab) -> dict[str, int | None]:
    return {n.name: n.incarnation for n in view(lab).nodes}


def test_the_lab_was_deployed_by_site_yml(lab: Lab) -> None:
    recap = lab.playbook_recap("site.yml")
    assert set(recap["hosts"]) == {"n1", "n2", "n3", "n4"}
    assert all(c["failures"] == 0 and c["unreachable"] == 0 for c in recap["hosts"].values())
    status = view(lab)
    assert status.formed, status.forming
    for node in ("n1", "n2", "n3", "n4"):
        paths = NodePaths(home=lab.node_dir(node))
        # the agent runs from the node's own virtualenv, with the config Ansible wrote
        assert (paths.venv / "bin" / "rack-agent").exists()
        assert paths.conf.read_text().startswith("# Ansible managed")
        key = paths.conf.parent / "node.key"
        assert key.stat().st_mode & 0o777 == 0o600
        cmdline = Path(f"/proc/{lab.pid_of(node)}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == str(paths.venv / "bin" / "python").encode()
        assert str(paths.conf).encode() in cmdline
    # each node holds only its own secret key
    assert not list(lab.node_dir("n1").rglob("n2.key"))


def test_a_second_converge_changes_nothing(lab: Lab) -> None:
    before = incarnations(lab)
    recap = lab.playbook("site.yml")
    assert changed(recap) == {"n1": 0, "n2": 0, "n3": 0, "n4": 0}, changed_tasks(recap)
    assert incarnations(lab) == before  # and no agent was restarted


def test_check_mode_on_a_converged_rack_reports_no_changes(lab: Lab) -> None:
    recap = lab.playbook("site.yml", check=True)
    assert changed(recap) == {"n1": 0, "n2": 0, "n3": 0, "n4": 0}, changed_tasks(recap)
    healthcheck = lab.playbook("healthcheck.yml", check=True)
    assert all(c["failures"] == 0 for c in healthcheck["hosts"].values())


def test_add_node_grows_the_rack_without_restarting_the_others(lab: Lab) -> None:
    before = incarnations(lab)
    name = lab.grow()
    assert name == "n5"
    recap = lab.playbook("add_node.yml", {"rackcloud_new_nodes": "n5"})
    # the others got the grown allowlist and nothing else (the enrolment runs on the
    # controller, and the recap counts it for the first host)
    for host in ("n1", "n2", "n3", "n4"):
        tasks = {t["name"] for t in recap["tasks"] if host in t["changed"]}
        assert "Ship the allowlist (running agents reread it, no restart)" in tasks
        assert tasks <= {
            "Ship the allowlist (running agents reread it, no restart)",
            "Enrol nodes that are new to the keyring",
        }, tasks
    after = incarnations(lab)
    assert {n: after[n] for n in before} == before
    status = view(lab)
    assert status.formed, status.forming
    n5 = next(n for n in status.nodes if n.name == "n5")
    assert n5.state == "up" and len(n5.osd_ids) == 2
    # a 3+2 pool over five hosts must put shards on n5's disks
    assert (
        rack(lab, "pool", "create", "wide", "--k", "3", "--m", "2", "--pg-num", "8").returncode == 0
    )
    blob = lab.dir / "blob.bin"
    blob.write_bytes(b"rackcloud keeps every acknowledged byte\n" * 40000)
    put = rack(lab, "put", "wide/blob", str(blob))
    assert put.returncode == 0, put.stderr
    wait_until(lambda: _shards_on(lab, "n5") > 0, 10.0, "n5's disks hold shards of the new object")
    again = lab.playbook("site.yml")
    assert set(changed(again).values()) == {0}, changed_tasks(again)


def _shards_on(lab: Lab, node: str) -> int:
    return sum(1 for p in lab.node_dir(node).glob("disk*/shards/**/*") if p.is_file())


FRESH_S = 5.0
"""A node up for less than this still learns who is up; its view is not sampled."""


class Watch:
    """Reads an object in a loop and samples the rack's view while a rollout runs."""

    def __init__(self, lab: Lab, obj: str, expected: bytes) -> None:
        self.lab, self.obj, self.expected = lab, obj, expected
        self.reads = self.failed_reads = 0
        self.samples: list[tuple[int, int]] = []  # (monitors up, nodes up) per view
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read), threading.Thread(target=self._look)]

    def __enter__(self) -> Watch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def _read(self) -> None:
        while not self._stop.is_set():
            done = rack(self.lab, "get", self.obj, "-")
            self.reads += 1
            if done.returncode != 0 or done.stdout != self.expected.decode():
                self.failed_reads += 1
                self.errors.append(done.stderr.strip())

    def _look(self) -> None:
        """Each node's view, except of a node that started moments ago (it is still
        learning who is up): at least two of the three monitors up in every one."""
        while not self._stop.is_set():
            for name in ("n1", "n2", "n3", "n4", "n5"):
                try:
                    status = self.lab.status_of(name, timeout=1.0)
                except RackError:  # it is restarting
                    continue
                me = next(n for n in status.nodes if n.name == name)
                if me.uptime_s is None or me.uptime_s < FRESH_S:
                    continue
                up = {n.name for n in status.nodes if n.state == "up"}
                self.samples.append((len(up & {"n1", "n2", "n3"}), len(up)))
            time.sleep(0.2)


def test_rolling_update_keeps_quorum_and_reads_and_resumes(lab: Lab, tmp_path: Path) -> None:
    target = "0.99.0"
    source = source_release(tmp_path, target)
    blob = lab.dir / "blob.bin"
    update = {"rackcloud_agent_source": str(source), "rackcloud_health_timeout": 15}
    with Watch(lab, "wide/blob", blob.read_bytes()) as watch:
        # n4 dies once n2 runs the new version: the rollout must stop, naming it
        outcome: dict[str, Any] = {}

        def roll() -> None:
            try:
                outcome["recap"] = lab.playbook("rolling_update.yml", update)
            except LabError as exc:
                outcome["error"] = str(exc)

        rollout = threading.Thread(target=roll)
        rollout.start()
        wait_until(lambda: _version(lab, "n2") == target, 180.0, "n2 runs the new version")
        lab.kill("n4")
        rollout.join()
        assert "error" in outcome, "the rollout went on with n4 dead"
        assert "n4" in outcome["error"] and "healthy" in outcome["error"], outcome["error"]
        assert _version(lab, "n5") != target  # it stopped before the last node
        lab.boot("n4", timeout=60.0)
        resumed = lab.playbook("rolling_update.yml", update)
    assert changed(resumed)["n1"] == 0 and changed(resumed)["n2"] == 0, changed_tasks(resumed)
    assert {n.name: n.version for n in view(lab).nodes} == dict.fromkeys(
        ("n1", "n2", "n3", "n4", "n5"), target
    )
    assert watch.reads > 10 and watch.failed_reads == 0, watch.errors[:3]
    assert watch.samples and min(m for m, _ in watch.samples) >= 2, "quorum was lost"
    finished = lab.playbook("rolling_update.yml", update)
    assert set(changed(finished).values()) == {0}, changed_tasks(finished)


def _version(lab: Lab, node: str) -> str | None:
    try:
        status = lab.status_of(node, timeout=1.0)
    except RackError:  # it is restarting
        return None
    return next((n.version for n in status.nodes if n.name == node), None)


def test_purge_twice_leaves_nothing_of_the_rack(lab: Lab) -> None:
    with pytest.raises(LabError, match="confirm_purge=yes"):
        lab.playbook("purge.yml")
    assert view(lab).formed  # nothing was touched
    first = lab.playbook("purge.yml", {"confirm_purge": "yes"})
    assert all(c["failures"] == 0 for c in first["hosts"].values())
    second = lab.playbook("purge.yml", {"confirm_purge": "yes"})
    assert set(changed(second).values()) == {0}, changed_tasks(second)
    st_nodes = ["n1", "n2", "n3", "n4", "n5"]
    for node in st_nodes:
        home = lab.node_dir(node)
        left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
        assert left == ["disk0", "disk1"], left  # the empty disks, nothing else
        assert lab.processes_of(node) == []
    assert not (lab.dir / "keys").exists()
