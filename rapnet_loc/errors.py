"""Exceptions raised for bad input. Each message names the file, topic or field at fault."""


class RapnetLocError(Exception):
    """Base class: an error the user can fix (bad file, missing topic, wrong option)."""


class BagError(RapnetLocError):
    """A bag cannot be opened or read (missing, truncated, empty, unknown format)."""


class TopicError(RapnetLocError):
    """A required topic is missing from a bag, or holds the wrong message type."""


class ImageFormatError(RapnetLocError):
    """An image message cannot be decoded (unsupported encoding, size not matching ``step``)."""


class DatasetError(RapnetLocError):
    """A frame folder is missing, empty, or lacks a file that a frame needs."""


class TrajectoryFormatError(RapnetLocError):
    """A trajectory or result file is malformed."""


class CalibrationError(RapnetLocError):
    """Unknown scene, robot or frame, or a malformed calibration file."""


class ConfigError(RapnetLocError):
    """A configuration file or option is invalid."""


class MapFormatError(RapnetLocError):
    """A map file is missing, not a map, truncated or corrupt, of another format version, or built with another
    feature extractor than requested."""


class OutputError(RapnetLocError):
    """An output file or folder cannot be written (read-only, no permission, a file in the way, full disk)."""
