"""Our ONNX ops on the Python side (SelectiveScan, CausalConv1d): contracts, float64 references,
torch ops and their ONNX forms."""
