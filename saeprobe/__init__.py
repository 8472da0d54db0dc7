"""saeprobe: sparse-autoencoder features and probes for text classification."""

import os

# MKL's matrix products otherwise sum in an order that depends on how many threads it
# happens to use (MKL_DYNAMIC lowers the count on a busy machine), so a seeded rerun could
# write different bits. Strict CNR mode keeps the fastest code path and makes gemm's
# result independent of the thread count. It must be set before MKL's first call, and
# every stage imports this package before it computes anything. A value already in the
# environment wins.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
