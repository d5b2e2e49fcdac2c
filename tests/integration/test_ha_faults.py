"""Container HA under harder faults on a 5-node netns lab (root): two nodes dying at
once, the monitor leader dying with the container's node, and specs the map refuses.

One lab serves the module; every test puts it back (nodes booted, every map showing
every node up, no container) and uses a container name and address of its own.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Iterator

import pytest

from agent.lab import Lab, state
from tests.conftest import needs_root
from tests.helpers import agreed_leader, wait_until
from tests.integration.ha_helpers import (
    MONITORS,
    NODES,
    POOL,
    SLEEPER,
    FramePoller,
    ct_ls,
    events,
    fill_monitors,
    find,
    first_t,
    fresh,  # noqa: F401 - an autouse fixture: each test gets a whole rack, no container
    fresh_address,
    ha_lab,
    leader,
    run_container,
    run_stream,
    service_net,
    span,
    wait_container,
)
from tests.integration.objects_helpers import error_line, rack_bin

pytestmark = [pytest.mark.integration, pytest.mark.root, needs_root]
SETTLE_S = 3.0
"""How long after the new instance started a second start would have shown."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from ha_lab(tmp_path_factory.mktemp("ha-faults"))


def _comes_back_once(
    lab: Lab,
    name: str,
    address: str,
    killed: list[str],
    meanwhile: Callable[[float], None] = lambda _struck: None,
) -> str:
    """Pull the power of ``killed`` at once (the container's node first); check the
    container starts exactly once more, as the next generation, on a survivor, and
    answers there. ``meanwhile(struck)`` runs right after the kill. Returns the node the
    container runs on."""
    before = ct_ls(lab)[name]
    gen = before["generation"]
    with FramePoller(address) as poller:
        struck = time.monotonic()
        for node in killed:
            lab.kill(node)
        meanwhile(struck)
        after = wait_container(
            lab,
            name,
            lambda c: c.generation == gen + 1 and c.state == "running",
            f"runs again as generation {gen + 1}",
        )
        answered, first = poller.wait_first_of(gen + 1)
        assert after.node is not None and after.node not in killed, after
        assert (first["node"], first["generation"]) == (after.node, gen + 1), first
        started = first_t(events(lab), "container_start", struck, container=name)
        assert started is not None
        time.sleep(max(0.0, started + SETTLE_S - time.monotonic()))
    evs = events(lab)
    starts = find(evs, "container_start", struck, container=name)
    assert [(e["node"], e["generation"]) for e in starts] == [(after.node, gen + 1)], starts
    listed = ct_ls(lab)
    assert [c["name"] for c in listed.values()].count(name) == 1
    assert (listed[name]["node"], listed[name]["generation"], listed[name]["state"]) == (
        after.node,
        gen + 1,
        "running",
    )
    down = first_t(evs, "node_state", struck, subject=killed[0], state="down")
    released = first_t(evs, "leases_released", struck, subject=killed[0])
    print(
        f"\nkilled {', '.join(killed)}: {name} started on {after.node} {span(struck, started)} "
        f"and answered {span(poller.last_before(struck) or struck, answered)} after the kill "
        f"(down {span(struck, down)}, leases released {span(struck, released)})"
    )
    return after.node


def test_two_nodes_dying_at_once_bring_the_container_back_exactly_once(lab: Lab) -> None:
    name, address = "stream-two", fresh_address(lab)
    c = run_stream(lab, name, address)
    assert c.node is not None
    # The other victim: a non-monitor, so two monitors stay, and the highest name, so
    # the scheduler (lowest name among equals) never picks it while it is not yet down.
    other = max(n for n in NODES if n != c.node and n not in MONITORS)
    _comes_back_once(lab, name, address, [c.node, other])


def test_the_leader_dying_with_the_containers_node_moves_it_exactly_once(lab: Lab) -> None:
    fill_monitors(lab)
    name, address = "stream-lead", fresh_address(lab)
    c = run_stream(lab, name, address)
    assert c.node is not None and c.node not in MONITORS, c
    old_leader = leader(lab)
    assert old_leader in MONITORS
    survivors = [n for n in NODES if n not in (c.node, old_leader)]
    elected: list[tuple[float, str]] = []

    def await_new_leader(struck: float) -> None:
        def agreed() -> bool:
            got = agreed_leader(lab, survivors)
            if got is not None and got != old_leader:
                elected.append((time.monotonic() - struck, got))
            return bool(elected)

        wait_until(agreed, 30.0, "the survivors agree on a new leader")

    new_node = _comes_back_once(lab, name, address, [c.node, old_leader], await_new_leader)
    assert new_node in survivors
    took, new_leader = elected[0]
    assert new_leader in MONITORS and new_leader != old_leader
    assert agreed_leader(lab, survivors) == new_leader
    print(f"leader {old_leader} -> {new_leader}, agreed by every survivor {took:.3f} s after")


def test_bad_specs_fail_at_run_in_one_sentence_and_change_nothing(lab: Lab) -> None:
    taken = run_container(lab, "taken", SLEEPER)
    assert taken.address is not None
    net = service_net(lab)
    node_address = state.require(lab.dir).node("n1").record.address
    outside = str(net.network_address - 1)
    assert ipaddress.IPv4Address(outside) not in net
    e = re.escape
    cases: list[tuple[list[str], str]] = [  # (arguments, the sentence as a pattern)
        (
            ["bad", "--volume", "nosuch/x/"],
            e("volume 'nosuch/x/' names pool 'nosuch', which does not exist (pools: vol)"),
        ),
        (
            ["bad", "--volume", f"{POOL}-no-slash"],
            e(f"volume '{POOL}-no-slash' is not POOL/PREFIX"),
        ),
        (
            ["bad", "--address", node_address],  # the map checks the pool first
            f"address {e(node_address)} is "
            f"(already in use|outside the rack's service addresses {e(str(net))})",
        ),
        (["bad", "--address", taken.address], e(f"address {taken.address} is already in use")),
        (
            ["bad", "--address", outside],
            e(f"address {outside} is outside the rack's service addresses {net}"),
        ),
        (
            ["bad", "--memory", "100000000"],
            e("container 'bad' asks for 100000000 MiB of memory; no compute node has that much"),
        ),
        (["taken"], e("container 'taken' already exists")),
    ]
    with lab.client() as client:
        before = client.cluster_map().containers
    for args, words in cases:
        line = error_line(rack_bin(lab, "ct", "run", *args, "--", *SLEEPER))
        assert re.search(words, line), (args, line)
        print(f"\n{' '.join(args)} -> {line}", end="")
    print()
    with lab.client() as client:
        assert client.cluster_map().containers == before
    assert list(ct_ls(lab)) == ["taken"]
