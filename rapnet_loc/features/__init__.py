"""Local features: the ``Features`` container, the extractor registry and descriptor matching."""
from rapnet_loc.features.base import (FeatureExtractor, Features, available_extractors, create_extractor,
                                      register)

__all__ = ['FeatureExtractor', 'Features', 'available_extractors', 'create_extractor', 'register']
