"""Window/level presets and HU normalisation, shared by the viewer, reports and training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Window:
    """A display window in HU: ``center`` (level) and ``width``."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"window width must be positive, got {self.width}")

    @property
    def levels(self) -> tuple[float, float]:
        """(lowest, highest) HU shown, black to white."""
        return self.center - self.width / 2.0, self.center + self.width / 2.0

    def to_uint8(self, hu: NDArray[np.int16]) -> NDArray[np.uint8]:
        lo, hi = self.levels
        scaled = (hu.astype(np.float32) - lo) * (255.0 / (hi - lo))
        return np.asarray(np.clip(scaled, 0, 255), dtype=np.uint8)


#: Presets on keys 1-4, in this order.
PRESETS: dict[str, Window] = {
    "lung": Window(-600, 1500),
    "mediastinum": Window(50, 350),
    "bone": Window(480, 2500),
    "soft tissue": Window(40, 400),
}
DEFAULT_WINDOW = PRESETS["lung"]
