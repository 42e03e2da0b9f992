"""cnnbench: the harness that measures the models of :mod:`zoo`.

Every measurement is a pure function that returns a pandas object or a dataclass; ``cnnbench.cli`` only formats.
"""

from .catalog import catalog, count_params
from .errors import CnnbenchError
from .profiling import Profile, ProfileTotals, profile

__version__ = "0.1.0"

__all__ = ["CnnbenchError", "Profile", "ProfileTotals", "catalog", "count_params", "profile", "__version__"]
