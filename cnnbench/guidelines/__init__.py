"""ShuffleNetV2's four guidelines: the paper's controlled experiments re-run on a target (:mod:`.microbench`), the
orderings they claim judged by the measured intervals (:mod:`.verdicts`), a whole run of them (:mod:`.run`), and
any model audited against them on the meta device (:mod:`.audit`)."""
