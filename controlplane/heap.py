"""The garbage collector's settings for a long-running control plane, applied once start-up is over."""

from __future__ import annotations

import gc

# Allocations (net of frees) between two young-generation collections; Python's default is 700.
# A push to a fleet allocates about a dozen tracked objects per stream (a response's bookkeeping,
# grpc's futures for the write and for the ACK) that live until the proxy's ACK: with 700, most of
# them are promoted to the old generation and every few changes a full collection scans every
# stream's state (0.2 s at 1,000 streams, 0.8 s at 5,000; bench/fleet.py). At 50,000 they die
# young; a young collection then scans at most that many objects (a few ms).
YOUNG_GENERATION_THRESHOLD = 50_000


def settle_heap() -> None:
    """Freeze what start-up built (botocore's service models, protobuf descriptors, the first
    view's caches live as long as the process) out of the collector's way, so that the collections
    a change or a resync triggers scan only what is new, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])
