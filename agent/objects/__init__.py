"""The object model, pure: on-disk and on-wire records, chunking, quorums and versions.

Shared by the OSD's store (``agent.store``), the data plane's messages (``agent.wire.data``),
the client data path (``agent.data``) and the OSD service. See docs/storage-format.md and
docs/objects.md.
"""
