"""Feasibility studies behind the built-in task and the demo settings (benchmarks/feasibility.md); run from the repository root as ``python -m dev.feasibility.<script>``."""
