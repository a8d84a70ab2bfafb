"""Scale-out: segmentation and embedding on a Ray cluster, approximate FAISS indexes for large N.

``scale.backend: ray`` sends the model work of ``bugdet segment`` / ``bugdet embed`` to Ray actors
(:mod:`bugdet.scale.ray_segment`, :mod:`bugdet.scale.ray_embed`); the driver keeps writing the
results through the in-process path's store functions, so SQLite keeps a single writer.
:mod:`bugdet.scale.ann` picks an exact or an IVF index by the number of vectors.
"""
