"""The embed stage: CLIP embeddings of mask crops and frames (open_clip eager or exported ONNX), stored in shards."""
