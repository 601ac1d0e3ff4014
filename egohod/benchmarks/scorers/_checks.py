"""Input checks shared by the scorers."""
from __future__ import annotations

import numpy as np


def require_finite(values: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming ``what``, the count and the first position of any NaN / inf entry.

    A NaN or infinite score has no place in a ranking (``argsort`` puts NaN last and ties every
    ``inf``), so a metric computed from it would be silently wrong.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        kinds = sorted({"NaN" if np.isnan(v) else ("inf" if v > 0 else "-inf") for v in values[bad][:1000].tolist()})
        raise ValueError(f"{what} contains {int(bad.sum())} non-finite value(s) ({', '.join(kinds)}), the first at "
                         f"index {first}; every entry must be a finite number")
