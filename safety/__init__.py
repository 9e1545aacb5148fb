"""cobotguard safety core: configuration, budget, the deterministic step and its executor.

This package never imports onnxruntime; the sensor path lives in `sensor`, the rig and CLI in `hil`.
"""
