"""Container HA on a 5-node netns lab (root): the demo stream moves when its node's power
is pulled and resumes from its checkpoint; a cut-off node stops it before the new
instance starts and does not start it again once healed; the OSDs refuse a stale
generation's writes; and ``rack ct stop/start/rm/logs``.

One lab serves the module; every test puts it back (nodes booted and healed, every map
showing every node up, no container) and uses a container name and address of its own.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest

from agent.data.objects import ObjectClient
from agent.errors import Fenced
from agent.lab import Lab
from agent.objects.layout import CHUNK_SIZE
from agent.wire import Fence
from tests.conftest import needs_root
from tests.helpers import wait_until
from tests.integration.ha_helpers import (
    MONITORS,
    NODES,
    POOL,
    STREAM,
    FramePoller,
    checkpoint,
    containers,
    ct_ls,
    events,
    fill_monitors,
    find,
    first_t,
    fresh,  # noqa: F401 - an autouse fixture: each test gets a whole rack, no container
    fresh_address,
    get_frame,
    ha_lab,
    holders,
    preconditions,
    run_stream,
    span,
    wait_checkpoint,
    wait_container,
    wait_frame,
    wait_silent,
)
from tests.integration.objects_helpers import content, get_bytes, ok, rack_bin, with_objects

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from ha_lab(tmp_path_factory.mktemp("ha"))


def _kill_and_move(lab: Lab, name: str, address: str) -> tuple[str, str, int]:
    """Run the stream, pull its node's power, wait until it answers from a survivor;
    (old node, new node, new generation)."""
    before = run_stream(lab, name, address)
    assert before.node is not None
    lab.kill(before.node)
    after = wait_container(
        lab,
        name,
        lambda c: c.generation == before.generation + 1 and c.state == "running",
        "runs again as a new generation",
    )
    assert after.node is not None
    wait_frame(address, lambda f: f["generation"] == after.generation, "answers again")
    return before.node, after.node, after.generation


# ---- failover --------------------------------------------------------------------------


def test_a_killed_nodes_stream_resumes_on_a_survivor_from_its_checkpoint(lab: Lab) -> None:
    name, address = "stream-kill", fresh_address(lab)
    before = run_stream(lab, name, address)
    assert before.node in NODES and before.generation == 1
    wait_checkpoint(lab, name, frame=1)
    with FramePoller(address) as poller:
        last = checkpoint(lab, name)  # just before the power goes
        assert last is not None and last["frame"] > 0, last
        struck = time.monotonic()
        lab.kill(before.node)
        after = wait_container(
            lab,
            name,
            lambda c: c.generation == before.generation + 1 and c.state == "running",
            "runs again as generation 2",
        )
        answered, first = poller.wait_first_of(after.generation)
    assert after.node in NODES and after.node != before.node
    assert first["node"] == after.node and first["generation"] == before.generation + 1, first
    assert first["frame"] >= last["frame"] > 0, (first, last)
    listed = ct_ls(lab)[name]
    assert (listed["node"], listed["generation"], listed["state"]) == (
        after.node,
        before.generation + 1,
        "running",
    )
    evs = events(lab)
    started = first_t(evs, "container_start", struck, container=name, generation=after.generation)
    print(
        f"\nkill {before.node}: {name} answered from {after.node} after "
        f"{span(poller.last_before(struck) or struck, answered)} (new instance started "
        f"{span(struck, started)} after the kill); checkpoint frame {last['frame']}, first "
        f"frame served {first['frame']}"
    )


def test_a_cut_off_node_stops_the_stream_before_it_starts_elsewhere(lab: Lab) -> None:
    name, address = "stream-cut", fresh_address(lab)
    before = run_stream(lab, name, address)
    old, gen = before.node, before.generation
    assert old is not None
    cut = time.monotonic()
    lab.partition(old)
    after = wait_container(
        lab,
        name,
        lambda c: c.generation == gen + 1 and c.state == "running",
        "runs again as a new generation",
    )
    wait_frame(address, lambda f: f["generation"] == gen + 1, "answers as the new generation")
    assert after.node is not None and after.node != old

    evs = events(lab)
    fenced = first_t(evs, "container_fenced", cut, node=old, container=name, generation=gen)
    stopped = first_t(evs, "container_stop", cut, node=old, container=name, generation=gen)
    starts = find(evs, "container_start", cut, container=name)
    assert [(e["node"], e["generation"]) for e in starts] == [(after.node, gen + 1)], starts
    new_start = float(starts[0]["t"])
    old_gone = min((t for t in (fenced, stopped) if t is not None), default=None)
    assert old_gone is not None, f"{old} logged no container_fenced or container_stop"
    assert old_gone < new_start, (fenced, stopped, new_start)
    print(
        f"\npartition {old}: fenced {span(cut, fenced)} and stopped {span(cut, stopped)} "
        f"after the cut; {after.node} started generation {gen + 1} {span(cut, new_start)} "
        f"after it, {span(old_gone, new_start)} after the old instance was gone"
    )

    lab.partition(old, heal=True)
    healed = time.monotonic()
    lab.wait_converged(60.0)
    time.sleep(max(0.0, healed + 3.0 - time.monotonic()))
    again = find(events(lab), "container_start", healed, node=old, container=name)
    assert again == [], again
    listed = ct_ls(lab)[name]
    assert (listed["node"], listed["generation"], listed["state"]) == (
        after.node,
        gen + 1,
        "running",
    )
    body = get_frame(address)
    assert body is not None and (body["node"], body["generation"]) == (after.node, gen + 1)


# ---- fencing ---------------------------------------------------------------------------


def _put(lab: Lab, key: str, data: bytes, fence: Fence) -> None:
    async def work(oc: ObjectClient) -> None:
        await oc.put(POOL, key, io.BytesIO(data))

    with_objects(lab, work, fence=fence)


def test_the_osds_refuse_a_write_carrying_an_older_generation(lab: Lab) -> None:
    name, address = "stream-fence", fresh_address(lab)
    run_stream(lab, name, address)
    with lab.client() as client:
        gen = client.cluster_map().containers[name].generation
    for size, kind in ((100, "inline"), (CHUNK_SIZE + 1, "chunked")):
        key = f"{name}/probe-{kind}"
        current, stale = content(size, size), content(size + 1, size)
        _put(lab, key, current, Fence(name, gen))
        with pytest.raises(Fenced, match="refused"):
            _put(lab, key, stale, Fence(name, gen - 1))
        assert get_bytes(lab, POOL, key) == current, (
            f"the {kind} write of generation {gen - 1} changed the object"
        )


# ---- the operator's verbs --------------------------------------------------------------


def test_ct_stop_start_logs_and_rm(lab: Lab) -> None:
    name, address = "stream-ops", fresh_address(lab)
    before = run_stream(lab, name, address)

    logs = ok(rack_bin(lab, "ct", "logs", name)).stdout.decode()
    assert "serving frame" in logs, logs

    out = ok(rack_bin(lab, "ct", "stop", name)).stdout.decode()
    assert f"container {name} is stopped" in out, out
    assert ct_ls(lab)[name]["state"] == "stopped"
    wait_silent(address)

    out = ok(rack_bin(lab, "ct", "start", name)).stdout.decode()
    assert f"container {name} is running" in out, out
    listed = ct_ls(lab)[name]
    assert (listed["node"], listed["generation"], listed["state"]) == (
        before.node,
        before.generation,
        "running",
    )
    body = wait_frame(address, lambda f: True, "answers again")
    assert (body["node"], body["generation"]) == (before.node, before.generation)

    out = ok(rack_bin(lab, "ct", "rm", name)).stdout.decode()
    assert f"container {name} removed" in out, out
    assert name not in ct_ls(lab)
    wait_silent(address)


# ---- found by these tests, fixed -------------------------------------------------------


def test_a_killed_node_booted_again_gives_up_the_moved_service_address(lab: Lab) -> None:
    address = fresh_address(lab)
    with preconditions():
        # On a non-monitor: a monitor that boots may replay an old map that places the
        # container on it, and retiring that slot happens to take the address off.
        fill_monitors(lab)
        old, new, _gen = _kill_and_move(lab, "stream-addr", address)
        assert old not in MONITORS, old
        wait_until(lambda: new in holders(lab, address), 10.0, f"{new} holds {address}")
        lab.boot(old)
    time.sleep(3.0)  # the booted agent's chance to tidy up
    assert holders(lab, address) == [new]


def test_a_container_run_again_under_a_removed_ones_name_can_write(lab: Lab) -> None:
    name = "stream-again"
    volume, address = f"{POOL}/{name}-2/", fresh_address(lab)
    with preconditions():
        old, _new, gen = _kill_and_move(lab, name, fresh_address(lab))
        wait_until(
            lambda: (checkpoint(lab, name) or {}).get("generation") == gen,
            20.0,
            f"generation {gen} checkpoints",
        )
        lab.boot(old)
        ok(rack_bin(lab, "ct", "rm", name))
        wait_until(lambda: name not in containers(lab), 20.0, f"{name} is gone")
        run = ["ct", "run", name, "--volume", volume, "--address", address, "--", *STREAM]
        ok(rack_bin(lab, *run))
    deadline = time.monotonic() + 10.0
    written = False
    while not written and time.monotonic() < deadline:
        written = rack_bin(lab, "get", f"{volume}stream.checkpoint", "-").returncode == 0
        time.sleep(0.5)
    status = containers(lab)[name]
    assert written, (
        f"generation {status.generation} of {name} wrote no checkpoint in 10 s "
        f"({status.restarts} restarts)"
    )
    assert status.restarts == 0, status
