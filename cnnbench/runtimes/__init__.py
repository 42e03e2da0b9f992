"""Deployment runtimes behind ``--backend onnxruntime|openvino``: the ONNX export and its cache (:mod:`.export`),
INT8 by static quantization on real images (:mod:`.int8`), and a loaded session with the forward cnnbench times
(:mod:`.session`). Where a target is taken, :func:`cnnbench.measure.forward.forward_on` sends it here."""

# Where `cnnbench report` measures the latency table again besides its own target: BACKEND:DTYPE, each on the
# report's device and threads.
DEPLOYMENTS = ("onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32")
