"""The ``rack`` command line."""
