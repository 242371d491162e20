"""SelectiveScan on the Python side: the contract, the float64 reference, the torch op and its ONNX forms."""
