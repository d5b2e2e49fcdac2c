"""The service address: the pool helper, loopback mode, and netns mode in a real namespace."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

import pytest

from agent.runtime import address
from agent.runtime.address import AddressFault, ServiceAddress
from tests.runtime.netns_helpers import in_netns, ip

NOT_ROOT = "a network namespace to change addresses in needs root"


# pick_free


def test_pick_free_takes_the_lowest_host_of_a_network() -> None:
    pool = IPv4Network("10.9.0.0/29")
    assert address.pick_free(pool, set()) == IPv4Address("10.9.0.1")  # not .0, the network
    taken = {IPv4Address("10.9.0.1"), IPv4Address("10.9.0.2")}
    assert address.pick_free(pool, taken) == IPv4Address("10.9.0.3")


def test_pick_free_never_gives_the_broadcast_address() -> None:
    pool = IPv4Network("10.9.0.0/30")
    hosts = {IPv4Address("10.9.0.1"), IPv4Address("10.9.0.2")}
    assert address.pick_free(pool, hosts) is None  # .3 is the broadcast address
    assert address.pick_free(IPv4Network("10.9.0.7/32"), set()) == IPv4Address("10.9.0.7")


def test_pick_free_keeps_the_order_of_a_list() -> None:
    pool = [IPv4Address("10.9.0.20"), IPv4Address("10.9.0.5"), IPv4Address("10.9.0.9")]
    assert address.pick_free(pool, set()) == IPv4Address("10.9.0.20")
    assert address.pick_free(pool, {IPv4Address("10.9.0.20")}) == IPv4Address("10.9.0.5")
    assert address.pick_free(pool, set(pool)) is None
    assert address.pick_free([], set()) is None


# the value and loopback mode (no root needed)


def test_a_service_address_checks_its_prefix() -> None:
    addr = ServiceAddress(IPv4Address("10.9.0.5"), 24, "eth0")
    assert str(addr.interface) == "10.9.0.5/24"
    assert str(addr) == "10.9.0.5/24 on eth0"
    with pytest.raises(AddressFault, match="prefix length 33"):
        ServiceAddress(IPv4Address("10.9.0.5"), 33, "eth0")


def test_loopback_mode_has_nothing_to_add_but_checks_the_address() -> None:
    addr = ServiceAddress(IPv4Address("127.77.0.5"), 8, None)
    address.add(addr)
    assert address.present(addr)
    address.remove(addr)  # nothing to take off either
    assert address.present(addr)


def test_loopback_mode_refuses_an_address_outside_127() -> None:
    addr = ServiceAddress(IPv4Address("10.9.0.5"), 24, None)
    with pytest.raises(AddressFault, match=r"only 127\.0\.0\.0/8 addresses work"):
        address.add(addr)
    assert not address.present(addr)


# netns mode, in a throwaway namespace with a veth pair of its own


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"rcgt{os.getpid() % 100000}addr"
    ip("netns", "delete", name, check=False)  # a leftover of a killed run
    try:
        ip("netns", "add", name)
        ip("-n", name, "link", "add", "rcgtd0", "type", "veth", "peer", "name", "rcgtd1")
        ip("-n", name, "addr", "add", "10.250.78.1/24", "dev", "rcgtd0")
        for dev in ("rcgtd0", "rcgtd1"):
            ip("-n", name, "link", "set", dev, "up")
        yield name
    finally:
        ip("netns", "delete", name, check=False)
    assert name not in ip("netns", "list")


ADD_REMOVE = """
import ipaddress, json, threading
from agent.runtime import address
from agent.runtime.address import AddressFault, ServiceAddress

def fault(call, addr):
    try:
        call(addr)
    except AddressFault as err:
        return str(err)
    return None

a = ServiceAddress(ipaddress.IPv4Address("10.250.78.100"), 24, "rcgtd0")
out = {"before": address.present(a)}
address.add(a)  # with its gratuitous ARPs (they stay in the namespace)
out["after_add"] = address.present(a)
address.add(a)  # again: idempotent
out["after_second_add"] = address.present(a)
for t in threading.enumerate():
    if t.name.startswith("garp-"):
        t.join()
address.remove(a)
out["after_remove"] = address.present(a)
address.remove(a)  # again: absent is fine
gone = ServiceAddress(a.ip, 24, "rcgtnone")
out["add_no_device"] = fault(address.add, gone)
out["present_no_device"] = fault(address.present, gone)
out["remove_no_device"] = fault(address.remove, gone)
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason=NOT_ROOT)
def test_add_remove_present_in_a_namespace(netns: str) -> None:
    out = json.loads(in_netns(netns, ADD_REMOVE))
    assert out["before"] is False
    assert out["after_add"] is True
    assert out["after_second_add"] is True
    assert out["after_remove"] is False
    assert "cannot add service address 10.250.78.100/24 on rcgtnone" in out["add_no_device"]
    assert "cannot list the addresses of rcgtnone" in out["present_no_device"]
    assert out["remove_no_device"] is None
    assert "10.250.78.100" not in ip("-n", netns, "-o", "-4", "addr", "show")
