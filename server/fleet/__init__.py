"""The fleet's models: a registry of ONNX files, per-truck assignments, canary rollouts and rollbacks."""
