"""Media preprocessing: raw bytes → ImageBind model inputs (CPU, float32, batch dim 1).

``preprocess(modality, data, limits)`` is the entry point (docs/INTERFACES.md);
``sniff(data)`` names a type from magic bytes; failures are ``MediaError`` with a
reason code from ``REASONS``. One module per modality (image, thermal, depth,
audio, video, imu), shared steps in raster, clips, resample, fbank, container.
"""

from .errors import REASONS, MediaError
from .limits import MediaLimits
from .pipeline import SHAPES, preprocess
from .sniff import sniff

__all__ = ["REASONS", "SHAPES", "MediaError", "MediaLimits", "preprocess", "sniff"]
