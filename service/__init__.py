"""The bugdet detection service: gRPC over onnxruntime, loading exported model packages.

This package deliberately imports nothing from ``bugdet``: it depends only on the model package
format (:mod:`service.model_package`), onnxruntime, numpy, OpenCV and grpc, so it can be deployed
on an inference host without torch or the training stack.
"""
