"""Frame features: the extractor seam, librosa front ends, their on-disk cache and extraction."""

from musicbench.features.cache import FeatureCache
from musicbench.features.extract import extract_frames
from musicbench.features.extractor import Extractor
from musicbench.features.frontends import FRONTENDS, FrontEnd

__all__ = ["FRONTENDS", "Extractor", "FeatureCache", "FrontEnd", "extract_frames"]
