"""Measuring one model: counts on the meta device (:mod:`.counting`, :mod:`.profiling`), latency on a target
(:mod:`.forward` sets the target up, :mod:`.latency` times it), time per op kind (:mod:`.breakdown`), the target's
roofline (:mod:`.roofline`) and the sweep of models × batches that joins them (:mod:`.bench`)."""
