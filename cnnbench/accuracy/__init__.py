"""Accuracy: figures printed elsewhere (:mod:`.published`), measured here by training on the digits that ship with
scikit-learn (:mod:`.train`, on the data of :mod:`.data`), and a checkpoint's on your image folder
(:mod:`.evaluate`, loading through :mod:`.checkpoints`)."""
