"""Applications on top of the library: the command line (``o1pruner``), the end-to-end demo and its plots."""
