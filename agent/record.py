"""One record of a node's identity and endpoints, used wherever a node is named.

Discovery admits one, links and subscriptions connect to one, the cluster map lists one
per node, heartbeats carry the sender's, ``rack status`` shows one per node, the client
config and the lab state hold them. A single type means a new endpoint (the data port
of object storage, say) is added in one place and reaches every user of it.
"""

from __future__ import annotations

from typing import Literal

import msgspec

NodeRole = Literal["mon", "osd", "compute", "gateway"]
"""What a node does (DESIGN §2); roles on the wire are plain strings, so a node of a
newer version with a role we do not know is still understood."""

DEFAULT_RPC_PORT = 7100
DEFAULT_PUB_PORT = 7101
DEFAULT_DATA_PORT = 7102


class NodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A node: its name, where it listens, the CURVE key it must prove, and its roles.

    ``public_key`` is empty where the key is looked up in the allowlist instead (a
    client config names nodes, the allowlist holds their keys).
    """

    name: str
    address: str
    rpc_port: int = DEFAULT_RPC_PORT
    pub_port: int = DEFAULT_PUB_PORT
    public_key: str = ""
    roles: tuple[str, ...] = ()
    data_port: int = 0
    """The data plane's ROUTER (shard bytes); 0 for a node that serves no disks."""
    cpus: int = 0
    memory_bytes: int = 0
    """What a compute node offers containers (0: runs none that asks for any)."""

    @property
    def rpc_endpoint(self) -> str:
        return f"tcp://{self.address}:{self.rpc_port}"

    @property
    def pub_endpoint(self) -> str:
        return f"tcp://{self.address}:{self.pub_port}"

    @property
    def data_endpoint(self) -> str:
        return f"tcp://{self.address}:{self.data_port}"

    def as_record(self) -> NodeRecord:
        """Only the record's fields (of a subclass such as the map's ``NodeInfo``)."""
        return NodeRecord(**{f: getattr(self, f) for f in NodeRecord.__struct_fields__})

    def endpoints(self) -> tuple[str, int, int, str]:
        """What a connection depends on: a change of any of these means reconnecting."""
        return (self.address, self.rpc_port, self.pub_port, self.public_key)
