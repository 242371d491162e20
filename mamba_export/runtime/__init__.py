"""Running exported folders on ONNX Runtime: the custom-op library, the model class, generation."""
