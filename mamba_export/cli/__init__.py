"""The ``mamba-export`` command line: one thin module per command."""
