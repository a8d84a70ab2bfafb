"""The cluster stage (autonomous filtering): FAISS k-means, HAC merge, dedupe, cluster balancing, the mask bank."""
