"""Deployment runtimes behind ``--backend onnxruntime|openvino``: the ONNX export and its cache (:mod:`.export`),
INT8 by static quantization on real images (:mod:`.int8`), and a loaded session with the forward cnnbench times
(:mod:`.session`). Where a target is taken, :func:`cnnbench.measure.forward.forward_on` sends it here."""

# Where `cnnbench report` measures the latency table again besides its own target: BACKEND:DTYPE, each on the
# report's device and threads.
DEPLOYMENTS = ("onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32")

# `cnnbench report` deploys the models of at most this many multiply-adds (`--deploy-max-gflops G|all`). At 7 G it
# leaves out 13 of the 62 (the 8 VGGs, ResNet-101/152 and EfficientNet-B5-B7, 7.6-37.8 G): on a 2-core CPU their
# exports, INT8 quantizations and rows on three runtimes took about 6 of the report's 15-18 minutes (2026-12-06),
# and the lightweight models these tables compare are all below it.
DEPLOY_MAX_FLOPS = 7e9
