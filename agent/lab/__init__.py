"""The lab rack: a whole Rackcloud rack on one machine, for demos and tests."""

from agent.lab.rack import Lab, choose_mode

__all__ = ["Lab", "choose_mode", "netns"]
