"""Export a trained detector to an ONNX model package the detection service can load.

``onnx_graph`` turns the torch detector into an ONNX graph that takes uint8 RGB frames,
``parity`` proves the graph computes what torch computes on real frames, and ``package``
writes the model directory atomically with its manifest. The package format itself lives in
:mod:`service.model_package`, shared with the service, which never imports this package.
"""
