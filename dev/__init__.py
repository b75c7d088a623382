"""Development material, not part of the installed package: the scripts that
trained and report on the shipped reference model (``python -m
dev.train_reference``, ``python -m dev.reference_report``) and the
feasibility studies behind the built-in task and the demo's settings
(``dev/feasibility/``, see benchmarks/feasibility.md). Run from the
repository root."""
