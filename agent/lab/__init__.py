"""The lab rack: a whole Rackcloud rack on one machine, for demos and tests."""

from agent.lab.rack import Lab, Timing, choose_mode

__all__ = ["Lab", "Timing", "choose_mode", "netns"]
