"""The values latency settings may take, torch-free so that settings are checked before torch loads."""

BACKENDS = ("onnxruntime", "torch", "executorch")  # the keys of measure.backends.RUNNERS
STATISTICS = ("p10", "median")  # which figure of a timing a table sums and a network is judged by
