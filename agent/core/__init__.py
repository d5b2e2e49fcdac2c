"""Pure decisions of the node: no sockets, files, clocks, asyncio or global randomness.

Every module here takes what it needs (a map, a detector view, ``now``) as arguments and
returns a value; the services in :mod:`agent.services` execute what these decide.
"""
