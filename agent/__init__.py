"""Rackcloud: a self-hosted storage cloud with container HA for racks of ordinary servers."""

__version__ = "0.1.0"
