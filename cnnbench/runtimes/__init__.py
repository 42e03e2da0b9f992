"""Deployment runtimes behind ``--backend onnxruntime|openvino``: the ONNX export and its cache (:mod:`.export`),
INT8 by static quantization on real images (:mod:`.int8`), and a loaded session with the forward cnnbench times
(:mod:`.session`). Where a target is taken, :func:`cnnbench.measure.forward.forward_on` sends it here."""

# Where `cnnbench report` measures the latency table again besides its own target: BACKEND:DTYPE, each on the
# report's device and threads.
DEPLOYMENTS = ("onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32")

# `cnnbench report` deploys every model. On a slow machine `--deploy-max-gflops` leaves the largest out; this limit
# is the one the README suggests: at 7 G multiply-adds it leaves out 13 of the 62 (the 8 VGGs, ResNet-101/152 and
# EfficientNet-B5-B7, 7.6-37.8 G), whose export and INT8 quantization are most of the deployments' preparation
# (ONNX Runtime's quantizer spends 30-120 s on each of them on a 2-core CPU).
SUGGESTED_DEPLOY_MAX_FLOPS = 7e9
