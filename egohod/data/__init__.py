"""Video-text data: video reading (:mod:`.video`), clip metadata (:mod:`.metadata`), training
datasets and samplers (:mod:`.datasets`), transforms (:mod:`.transforms`), chunking full videos
into the training layout (:mod:`.chunking`), re-encoding an existing chunked corpus into the
fast-decoding training layout (:mod:`.prepare`) and a synthetic corpus (:mod:`.synthetic`).

Submodules are imported on use, so ``import egohod`` stays light.
"""
