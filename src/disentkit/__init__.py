"""disentkit: disentangled representations from synthetic to real images.

Implements the experiment of Dapueto, Noceti & Odone, "Transferring disentangled
representations: bridging the gap between synthetic and real images" (NeurIPS 2024,
arXiv 2409.18017): datasets with known factors, weakly-supervised VAEs, transfer to real
targets, OMES and the classic disentanglement metrics. Nothing heavy happens at import.
"""

__version__ = "0.1.0"
