"""Workloads shipped with the product, run inside containers of the rack.

``stream`` is the demo workload ``rack-demo-stream`` (DESIGN §11); ``video`` makes and
reads the synthetic video object it plays.
"""
