"""ImageBind (all six towers), inference only.

Written from the behaviour documented in `tests/fixtures/imagebind/README.md`
(facebookresearch/ImageBind @53680b0 and the PandaGPT copy @9b77e04) and the
layout in `huge_manifest.json`; in the manner of nanoGPT `model.py`: layers →
block → config → top model. Module attribute names are the checkpoint keys
(`modality_preprocessors|modality_trunks|modality_heads|modality_postprocessors
.<modality>`), so the official state_dict loads strictly with no rename map.

Reading order: attention kernels → attention → MLP → block → trunk →
stems/preprocessors → heads/postprocessors → ImageBindModel.

Deliberate departures from the reference (none changes results beyond float noise):
- Batch-first layout (B, T, C) everywhere; the reference runs (T, B, C).
- Attention through a kernel registry (`ATTENTION_FUNCTIONS`, default SDPA).
  `bias_k`/`bias_v` (audio, depth, thermal, imu) are appended as one extra
  key/value token; text uses `is_causal=True` instead of adding the stored
  `mask` buffer (identical maths; the buffer is kept for the checkpoint).
- The vision stem's Conv3d (kernel = stride) runs as patchify + matmul.
- No drop-path, no dropout: inference only.
- Postprocessing (L2 norm, logit scale, clip mean) runs in float32 and
  returns float32 whatever the model dtype; the `log_logit_scale` tensors stay
  float32 through `.to(dtype)` (bf16 would turn log(10) into a scale of 9.94).
- A 5-D vision input raises instead of being misread as a clip batch; give one
  video clip as 6-D `[B, 1, 3, 2, H, W]`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from encoders.imagebind.config import IMU_CHANNELS, IMU_WINDOW, MODALITIES, ImageBindConfig

AttentionFn = Callable[[Tensor, Tensor, Tensor, bool], Tensor]


# ---------------------------------------------------------------- attention kernels
def sdpa_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    # q (B, H, T, hd), k/v (B, H, S, hd) -> (B, H, T, hd)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def math_attention(q: Tensor, k: Tensor, v: Tensor, is_causal: bool) -> Tensor:
    """Plain softmax(q kᵀ / sqrt(hd)) v; a readable reference for the SDPA path."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, H, T, S)
    if is_causal:
        t, s = scores.shape[-2:]
        future = torch.ones(t, s, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, H, T, hd)


ATTENTION_FUNCTIONS: dict[str, AttentionFn] = {"sdpa": sdpa_attention, "math": math_attention}


def get_attention_function(name: str) -> AttentionFn:
    try:
        return ATTENTION_FUNCTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown attn_implementation {name!r}; choose one of {sorted(ATTENTION_FUNCTIONS)}"
        ) from None


# ---------------------------------------------------------------- layers
class ImageBindAttention(nn.Module):
    """Multi-head self-attention with the packed `in_proj` layout of the checkpoint."""

    def __init__(
        self, dim: int, num_heads: int, add_bias_kv: bool, is_causal: bool, attn_fn: AttentionFn
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.attn_fn = attn_fn
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))  # rows: q, k, v
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        if add_bias_kv:
            # One learned key and value token, already in projected space.
            self.bias_k: nn.Parameter | None = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v: nn.Parameter | None = nn.Parameter(torch.empty(1, 1, dim))
        else:
            self.bias_k = self.bias_v = None
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        H = self.num_heads
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).split(C, dim=-1)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.expand(B, 1, C)], dim=1)  # (B, T+1, C)
            v = torch.cat([v, self.bias_v.expand(B, 1, C)], dim=1)  # (B, T+1, C)
        q = q.view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, -1, H, C // H).transpose(1, 2)  # (B, H, S, hd)
        v = v.view(B, -1, H, C // H).transpose(1, 2)  # (B, H, S, hd)
        y = self.attn_fn(q, k, v, self.is_causal)  # (B, H, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.out_proj(y)


class ImageBindMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ImageBindBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm_1(x)), then x + mlp(norm_2(x))."""

    def __init__(
        self, dim: int, num_heads: int, add_bias_kv: bool, is_causal: bool, attn_fn: AttentionFn
    ) -> None:
        super().__init__()
        self.attn = ImageBindAttention(dim, num_heads, add_bias_kv, is_causal, attn_fn)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ImageBindMLP(dim, 4 * dim)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class ImageBindTrunk(nn.Module):
    """The blocks of one modality. Only vision has a pre-transformer LayerNorm;
    no trunk has a final norm (the head's LayerNorm plays that role)."""

    def __init__(
        self,
        dim: int,
        num_blocks: int,
        num_heads: int,
        *,
        pre_norm: bool,
        add_bias_kv: bool,
        is_causal: bool,
        attn_fn: AttentionFn,
    ) -> None:
        super().__init__()
        self.pre_transformer_layer = (
            nn.Sequential(nn.LayerNorm(dim, eps=1e-6)) if pre_norm else nn.Identity()
        )
        self.blocks = nn.ModuleList(
            ImageBindBlock(dim, num_heads, add_bias_kv, is_causal, attn_fn)
            for _ in range(num_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_transformer_layer(x)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return x


# ---------------------------------------------------------------- stems / preprocessors
class ImageBindPadToVideo(nn.Module):
    """Index 0 of the vision stem: an image becomes a clip of `frames` equal frames."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.unsqueeze(2)  # (B, C, 1, H, W)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)  # (B, C, T, H, W)
        return x


class ImageBindVisionStem(nn.Module):
    def __init__(self, dim: int, frames: int, kernel: tuple[int, int, int]) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            ImageBindPadToVideo(frames),
            nn.Conv3d(3, dim, kernel_size=kernel, stride=kernel, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        pad, conv = self.proj
        x = pad(x)  # (B, C, T, H, W)
        B, C, T, H, W = x.shape
        kt, kh, kw = conv.kernel_size
        # Conv3d with kernel == stride is a matmul over non-overlapping patches,
        # tokens in (t, h, w) row-major order, features in the weight's (c, t, h, w).
        x = x.reshape(B, C, T // kt, kt, H // kh, kh, W // kw, kw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, kt, kh, kw)
        x = x.reshape(B, -1, C * kt * kh * kw)  # (B, N, C·kt·kh·kw)
        return F.linear(x, conv.weight.flatten(1))  # (B, N, D)


class ImageBindConvStem(nn.Module):
    """Conv2d (no bias) → tokens → LayerNorm (eps 1e-5): audio, depth, thermal."""

    def __init__(self, dim: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=kernel, stride=stride, bias=False)
        self.norm_layer = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)  # (B, D, h, w)
        return self.norm_layer(x.flatten(2).transpose(1, 2))  # (B, h·w, D)


class ImageBindIMUStem(nn.Module):
    """Windows of 8 samples × 6 channels (feature = channel·8 + t) → Linear → LN (1e-5)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(IMU_CHANNELS * IMU_WINDOW, dim, bias=False)
        self.norm_layer = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        B, C, L = x.shape  # (B, 6, 2000)
        x = x.reshape(B, C, L // IMU_WINDOW, IMU_WINDOW).transpose(1, 2)  # (B, W, C, 8)
        return self.norm_layer(self.proj(x.reshape(B, L // IMU_WINDOW, C * IMU_WINDOW)))


class ImageBindPosEmbed(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))


class ImageBindPatchPreprocessor(nn.Module):
    """Stem → prepend CLS → add positional embedding (which covers CLS too).

    Vision, audio, depth, thermal. `stem_name` is the checkpoint's name for the
    stem (`rgbt_stem` or `depth_stem`)."""

    def __init__(self, stem_name: str, stem: nn.Module, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.stem_name = stem_name
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.add_module(stem_name, stem)
        self.pos_embedding_helper = ImageBindPosEmbed(num_tokens, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = getattr(self, self.stem_name)(x)  # (B, N, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, x], dim=1) + self.pos_embedding_helper.pos_embed  # (B, N+1, D)


class ImageBindIMUPreprocessor(nn.Module):
    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, num_tokens, dim))
        self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
        self.imu_stem = ImageBindIMUStem(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.imu_stem(x)  # (B, 250, D)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.pos_embed  # (B, 251, D)


class ImageBindTextPreprocessor(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, context_length, dim))
        # Stored causal mask (0 on/below the diagonal, -inf above); kept for the
        # checkpoint, the trunk uses is_causal=True instead.
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("mask", mask)
        self.token_embedding = nn.Embedding(vocab_size, dim)

    def forward(self, token_ids: Tensor) -> Tensor:
        return self.token_embedding(token_ids) + self.pos_embed  # (B, 77, D)


# ---------------------------------------------------------------- heads / postprocessors
class ImageBindSelectToken(nn.Module):
    """Index 1 of the non-text heads: the CLS token."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, 0]  # (B, T, C) -> (B, C)


class ImageBindTextHead(nn.Module):
    """Token at the argmax of the ids (EOT, the largest id) → LayerNorm → Linear."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim, bias=False))

    def forward(self, x: Tensor, token_ids: Tensor) -> Tensor:
        rows = torch.arange(x.shape[0], device=x.device)
        return self.proj(x[rows, token_ids.argmax(dim=-1)])  # (B, C) -> (B, out)


def make_head(dim: int, out_dim: int, dropout_slot: bool) -> nn.Sequential:
    """LayerNorm → CLS → Linear; IMU keeps an (eval-inactive) slot at index 2."""
    layers: list[nn.Module] = [nn.LayerNorm(dim, eps=1e-6), ImageBindSelectToken()]
    if dropout_slot:
        layers.append(nn.Identity())
    layers.append(nn.Linear(dim, out_dim, bias=False))
    return nn.Sequential(*layers)


class ImageBindNormalize(nn.Module):
    """Index 0 of every postprocessor; `ImageBindModel.postprocess` does the same in float32."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1)  # eps 1e-12


class ImageBindLogitScale(nn.Module):
    """Holds `log_logit_scale` (a parameter for text, a buffer elsewhere).

    The tensor stays float32 whatever dtype the model is cast to."""

    def __init__(self, init: float, learnable: bool, max_scale: float = 100.0) -> None:
        super().__init__()
        self.max_scale = max_scale
        self.init_value = init
        value = torch.tensor(math.log(init))
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)

    def scale(self) -> Tensor:
        """exp(log_logit_scale) capped at 100, read from the weights."""
        return self.log_logit_scale.float().exp().clamp(max=self.max_scale)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> ImageBindLogitScale:
        super()._apply(fn, recurse)  # device moves and casts, then back to float32
        self.log_logit_scale.data = self.log_logit_scale.data.float()
        return self


# Initial logit scales of the reference (learnable only for text); the
# checkpoint's values replace them on load.
_LOGIT_SCALE_INIT: dict[str, tuple[float, bool]] = {
    "text": (1 / 0.07, True),
    "audio": (20.0, False),
    "depth": (5.0, False),
    "thermal": (10.0, False),
    "imu": (5.0, False),
}


# ---------------------------------------------------------------- model
class ImageBindModel(nn.Module):
    """ImageBind with the reference module tree. See the module docstring.

    Public entry points:
    - `forward(inputs)`: upstream outputs per modality, `[B, out_dim]` float32.
    - `pandagpt_features(inputs)`: the per-item feature PandaGPT projects.
    - `head_outputs(inputs)`: head outputs before postprocessing, `[B·S, out_dim]`.
    - Stage methods `split_clips`, `embed_tokens`, `run_trunk`, `run_head`,
      `postprocess`, which the above compose.
    """

    def __init__(self, config: ImageBindConfig) -> None:
        super().__init__()
        self.config = cfg = config
        attn_fn = get_attention_function(cfg.attn_implementation)
        dims = {m: cfg.embed_dim(m) for m in MODALITIES}
        n = cfg.num_tokens

        self.modality_preprocessors = nn.ModuleDict(
            {
                "vision": ImageBindPatchPreprocessor(
                    "rgbt_stem",
                    ImageBindVisionStem(dims["vision"], cfg.video_frames, cfg.kernel_size),
                    n["vision"],
                    dims["vision"],
                ),
                "text": ImageBindTextPreprocessor(cfg.vocab_size, cfg.context_length, dims["text"]),
                "audio": ImageBindPatchPreprocessor(
                    "rgbt_stem",
                    ImageBindConvStem(dims["audio"], cfg.audio_kernel_size, cfg.audio_stride),
                    n["audio"],
                    dims["audio"],
                ),
                "depth": ImageBindPatchPreprocessor(
                    "depth_stem",
                    ImageBindConvStem(dims["depth"], cfg.depth_kernel_size, cfg.depth_kernel_size),
                    n["depth"],
                    dims["depth"],
                ),
                "thermal": ImageBindPatchPreprocessor(
                    "rgbt_stem",
                    ImageBindConvStem(
                        dims["thermal"], cfg.thermal_kernel_size, cfg.thermal_kernel_size
                    ),
                    n["thermal"],
                    dims["thermal"],
                ),
                "imu": ImageBindIMUPreprocessor(n["imu"], dims["imu"]),
            }
        )
        self.modality_trunks = nn.ModuleDict(
            {
                m: ImageBindTrunk(
                    dims[m],
                    cfg.num_blocks(m),
                    cfg.num_heads(m),
                    pre_norm=m == "vision",
                    add_bias_kv=m in ("audio", "depth", "thermal", "imu"),
                    is_causal=m == "text",
                    attn_fn=attn_fn,
                )
                for m in MODALITIES
            }
        )
        self.modality_heads = nn.ModuleDict(
            {
                m: ImageBindTextHead(dims[m], cfg.out_embed_dim)
                if m == "text"
                else make_head(dims[m], cfg.out_embed_dim, dropout_slot=m == "imu")
                for m in MODALITIES
            }
        )
        self.modality_postprocessors = nn.ModuleDict(
            {
                m: nn.Sequential(ImageBindNormalize(), ImageBindLogitScale(*_LOGIT_SCALE_INIT[m]))
                if m in _LOGIT_SCALE_INIT
                else nn.Sequential(ImageBindNormalize())
                for m in MODALITIES
            }
        )
        self.init_weights()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02, generator: torch.Generator | None = None) -> None:
        """Random weights for tests and benchmarks: LayerNorm 1/0, the rest N(0, std²);
        logit scales and the text mask get their reference initial values (so this
        also fills a model made with `to_empty`)."""
        norm_params: set[int] = set()
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
                norm_params.update(id(p) for p in module.parameters())
            elif isinstance(module, ImageBindLogitScale):
                module.log_logit_scale.fill_(math.log(module.init_value))
            elif isinstance(module, ImageBindTextPreprocessor):
                module.mask.fill_(float("-inf")).triu_(1)
        for name, p in self.named_parameters():
            if id(p) not in norm_params and not name.endswith("log_logit_scale"):
                p.normal_(0.0, std, generator=generator)

    # ------------------------------------------------------------ stages
    def split_clips(self, modality: str, x: Tensor) -> tuple[Tensor, int | None]:
        """Flatten a clip batch `[B, S, ...]` (any input of ≥ 5 dims) to `[B·S, ...]`."""
        if modality == "vision" and x.ndim == 5:
            raise ValueError(
                "5-D vision input is ambiguous; give images as [B,3,H,W] and video "
                "as [B,S,3,T,H,W] (one clip: S=1)"
            )
        if modality != "text" and x.ndim >= 5:
            return x.flatten(0, 1), x.shape[1]
        return x, None

    def embed_tokens(self, modality: str, x: Tensor) -> Tensor:
        """Trunk input `[N, L, D]`: stem, stem LayerNorm, CLS, positional embedding."""
        preprocessor = self.modality_preprocessors[modality]
        if x.is_floating_point():
            x = x.to(next(preprocessor.parameters()).dtype)
        return preprocessor(x)

    def run_trunk(self, modality: str, tokens: Tensor) -> Tensor:
        """Trunk output `[N, L, D]` (vision's pre-transformer LayerNorm included)."""
        return self.modality_trunks[modality](tokens)

    def run_head(self, modality: str, trunk_out: Tensor, token_ids: Tensor | None = None) -> Tensor:
        """Head output before postprocessing, `[N, out_dim]`."""
        if modality == "text":
            if token_ids is None:
                raise ValueError("the text head needs the token ids")
            return self.modality_heads["text"](trunk_out, token_ids)
        return self.modality_heads[modality](trunk_out)

    def logit_scale(self, modality: str) -> Tensor | None:
        """exp(log_logit_scale) capped at 100 from the weights, or None (vision)."""
        post = self.modality_postprocessors[modality]
        return post[1].scale() if len(post) > 1 else None

    def postprocess(
        self, modality: str, head: Tensor, num_clips: int | None, *, pandagpt: bool = False
    ) -> Tensor:
        """L2-normalise, apply the modality's logit scale, average clips (float32).

        Upstream scales (exp(log_logit_scale) read from the weights, capped at 100;
        released values): text ×trained, audio ×20, depth ×5, thermal ×10, imu ×5,
        vision none. PandaGPT (`pandagpt=True`) keeps every scale except audio's:
        its audio feature is L2-normalised only."""
        x = F.normalize(head.float(), dim=-1)  # (N, out)
        scale = self.logit_scale(modality)
        if scale is not None and not (pandagpt and modality == "audio"):
            # The weights' scale (released values): text ×trained, audio ×20 (upstream only;
            # PandaGPT drops it), depth ×5, thermal ×10, imu ×5. Vision has none.
            x = x * scale
        if num_clips is not None:
            x = x.view(-1, num_clips, x.shape[-1]).mean(dim=1)  # (B, S, out) -> (B, out)
        return x

    def encode_heads(self, modality: str, x: Tensor) -> tuple[Tensor, int | None]:
        """Head outputs `[B·S, out_dim]` and the clip count S (None: no clip axis)."""
        x, num_clips = self.split_clips(modality, x)
        trunk_out = self.run_trunk(modality, self.embed_tokens(modality, x))
        return self.run_head(modality, trunk_out, x if modality == "text" else None), num_clips

    # ------------------------------------------------------------ entry points
    def encode(self, modality: str, x: Tensor, *, pandagpt: bool = False) -> Tensor:
        if modality not in self.modality_trunks:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        head, num_clips = self.encode_heads(modality, x)
        return self.postprocess(modality, head, num_clips, pandagpt=pandagpt)

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Upstream outputs `[B, out_dim]` (postprocessing and clip mean included)."""
        return {m: self.encode(m, x) for m, x in inputs.items()}

    def pandagpt_features(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The feature PandaGPT feeds its projection, `[B, out_dim]` float32.

        vision: L2-norm; video (6-D vision): mean over clips of L2-normed outputs;
        audio: L2-norm, no logit scale, clip mean; depth/thermal/imu: L2-norm ×
        the checkpoint's logit scale (5/10/5 released). Identical to `forward`
        except for audio."""
        if "text" in inputs:
            raise ValueError("PandaGPT has no text media feature; use forward() for text")
        return {m: self.encode(m, x, pandagpt=True) for m, x in inputs.items()}

    def head_outputs(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Head outputs before postprocessing, `[B·S, out_dim]` (clips not reduced)."""
        return {m: self.encode_heads(m, x)[0] for m, x in inputs.items()}
