"""mdaq: multilingual instruction-tuning data selection (M-DaQ) — library, pipeline and leaderboard."""

from mdaq.config import Params, load_params
from mdaq.errors import ChecksumError, DataError, MissingAssetError
from mdaq.registry import Registry
from mdaq.selectors import FEATURES, SELECTORS, BaseSelector, get_selector
from mdaq.types import Embedder, Pool, QualityScorer, Sample, sample_id

__version__ = "0.1.0"

__all__ = [
    "BaseSelector",
    "ChecksumError",
    "DataError",
    "Embedder",
    "FEATURES",
    "MissingAssetError",
    "Params",
    "Pool",
    "QualityScorer",
    "Registry",
    "SELECTORS",
    "Sample",
    "get_selector",
    "load_params",
    "sample_id",
    "__version__",
]
