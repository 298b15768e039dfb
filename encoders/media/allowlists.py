"""The decoders and image formats a request may reach, by default (plain data).

Why allow-lists: FFmpeg ships hundreds of decoders and Pillow dozens of
plugins, each a parser of untrusted bytes; a container can name any of them
(a JPEG 2000 video in Matroska is a valid file). The lists hold what the
modalities need and nothing else. The service's settings start from these;
the gateway's settings import them, so this module imports nothing.
"""

from __future__ import annotations

#: FFmpeg decoder names: H.264, HEVC, VP8, VP9, AV1 (FFmpeg's own, dav1d, aom), MPEG-4 Part 2.
VIDEO_CODECS: tuple[str, ...] = (
    "h264", "hevc", "vp8", "libvpx", "vp9", "libvpx-vp9", "av1", "libdav1d", "libaom-av1", "mpeg4",
)  # fmt: skip
#: PCM in its common sample formats, FLAC, MP3, AAC, Opus, Vorbis (native and library decoders).
AUDIO_CODECS: tuple[str, ...] = (
    "pcm_u8", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_s32be",
    "pcm_f32le", "pcm_f32be", "pcm_f64le", "pcm_f64be",
    "flac", "mp3float", "mp3", "aac", "aac_fixed", "opus", "libopus", "vorbis", "libvorbis",
)  # fmt: skip
#: Pillow's names for what ``sniff`` calls jpeg (MPO is a multi-picture JPEG), png,
#: gif, webp, bmp and tiff.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF")
