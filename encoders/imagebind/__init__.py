"""ImageBind: config, model, strict checkpoint loading, CLIP tokenizer."""

from encoders.imagebind.config import MODALITIES, ImageBindConfig
from encoders.imagebind.model import ImageBindModel

__all__ = ["MODALITIES", "ImageBindConfig", "ImageBindModel"]
