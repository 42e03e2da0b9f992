"""Deployment runtimes behind ``--backend onnxruntime|openvino``: the ONNX export and its cache (:mod:`.export`),
INT8 by static quantization on real images (:mod:`.int8`), and a loaded session with the forward cnnbench times
(:mod:`.session`). Where a target is taken, :func:`cnnbench.measure.forward.forward_on` sends it here."""

# Where `cnnbench report` measures the latency table again besides its own target: BACKEND:DTYPE, each on the
# report's device and threads.
DEPLOYMENTS = ("onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32")

# The deployment tables of `cnnbench report` take the models of at most this many multiply-adds (`--deploy-all`:
# every model). It leaves out 13 of the 62: the 8 VGGs, ResNet-101/152 and EfficientNet-B5-B7 (7.6-37.8 G). On a
# 2-core CPU their export and quantization alone take about 10 minutes, which would put the default report past 15.
DEPLOY_MAX_FLOPS = 7e9
