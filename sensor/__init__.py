"""The sensor path: an IMX500-style person detection sensor emulated on the host, and real-sensor adapters.

Importing this package is cheap: onnxruntime is imported only by the detector module.
"""
