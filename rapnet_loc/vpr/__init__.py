"""Place recognition: the ``PlaceRecognizer`` interface, its registry (``rapnet_loc.vpr.base``), ``bow``,
``netvlad`` and ``patchnetvlad``."""
from rapnet_loc.vpr.base import (GlobalDescriptorRecognizer, PlaceRecognizer, Ranking, View, create_recognizer,
                                 register)

__all__ = ['GlobalDescriptorRecognizer', 'PlaceRecognizer', 'Ranking', 'View', 'create_recognizer', 'register']
