"""The parity suite: exported graphs against the PyTorch model run in float64."""
