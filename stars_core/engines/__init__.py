"""What runs a model: PyTorch itself (`torch_runner`), the ONNX export of a branch (`onnx_export`),
ONNX Runtime and OpenVINO sessions of an export (`onnx_model`), and the automatic choice between
them with the cached exports it makes (`auto`, what `--runtime auto|torch|onnx|int8` picks)."""
