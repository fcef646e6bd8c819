"""How etbert compiles its per-packet and per-flow loops: numba, without reference counting.

Numba counts references to every array passed between compiled functions, with atomic updates that it
cannot remove where the called function branches. In anonymisation's header walk those updates cost
several times the walk itself (about 8x on 133,000 packets, in a one-off comparison). A function compiled
with numba's ``_nrt=False`` does no counting, at a price: it cannot create arrays. Every array it uses,
scratch space included, comes from its Python caller, which keeps it alive for the call.

Both decorators cache the machine code next to the source, so only the first run on a machine compiles.
"""

from __future__ import annotations

from numba import njit

_OPTIONS = {"cache": True, "nogil": True, "_nrt": False}

compiled = njit(**_OPTIONS)
"""A compiled loop or helper."""

compiled_inline = njit(inline="always", **_OPTIONS)
"""A small helper inlined into its callers before they are compiled."""
