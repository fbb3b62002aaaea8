"""Export to what the app runs: ONNX with NodeView's metadata (:mod:`.onnx`)."""
