"""ShuffleNetV2's four guidelines: the paper's controlled experiments re-run on a target (:mod:`.microbench`) and
any model audited against them on the meta device (:mod:`.audit`)."""
