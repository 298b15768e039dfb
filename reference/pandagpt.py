"""An independent PandaGPT language side, the way the original code ran it.

The oracle of the parity tests (tests/parity) and the language side of the
benchmark's reference path (reference/path.py).

Loads the UNCONVERTED sources: the base Vicuna with transformers, peft's LoRA
(r 32, alpha 32, q/k/v/o) wrapped around it, and the delta loaded into a
module tree `{llama_model, llama_proj}` with `load_state_dict(strict=False)`,
as PandaGPT's `OpenLLAMAPEFTModel` did. Prompt embeddings are concatenated
piece by piece (bos, "### Human: <Img>", summed projected media,
"</Img> " + history + "\\n### Assistant:"). It imports nothing from `service`,
so agreement with the service is evidence, not tautology.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoTokenizer, LlamaForCausalLM
from transformers.generation.streamers import BaseStreamer


@dataclass(frozen=True)
class TimedIds:
    """Generated ids and the `time.perf_counter()` at which each one was produced."""

    ids: list[int]
    token_times: list[float]


class ReferencePandaGPT(torch.nn.Module):
    def __init__(self, vicuna: Path, delta: Path, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.tokenizer = AutoTokenizer.from_pretrained(str(vicuna))
        base = LlamaForCausalLM.from_pretrained(str(vicuna), dtype=dtype)
        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            inference_mode=True,
            r=32,
            lora_alpha=32,
            lora_dropout=0.1,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        )
        self.llama_model = get_peft_model(base, peft_config)
        state = torch.load(delta, map_location="cpu", weights_only=True)
        out_dim = state["llama_proj.weight"].shape[1]
        hidden = base.config.hidden_size
        self.llama_proj = torch.nn.Linear(out_dim, hidden, dtype=dtype)
        result = self.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise KeyError(f"delta keys not in the model: {result.unexpected_keys[:3]}")
        missing_lora = [k for k in result.missing_keys if "lora_" in k]
        if missing_lora:
            raise KeyError(f"LoRA keys not in the delta: {missing_lora[:3]}")
        self.eval()

    @property
    def device(self) -> torch.device:
        return self.llama_proj.weight.device

    def embed(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        table = self.llama_model.model.model.embed_tokens
        return table(ids.to(self.device))[0]  # [t, C]

    @staticmethod
    def history(turns: list[tuple[str, str]], question: str) -> str:
        text = ""
        for i, (q, a) in enumerate(turns):
            text += (q if i == 0 else " Human: " + q) + "\n### Assistant: " + a + "\n###"
        return text + (question if not turns else " Human: " + question)

    @torch.no_grad()
    def inputs_embeds(
        self,
        question: str,
        turns: list[tuple[str, str]] | None = None,
        features: list[torch.Tensor] | None = None,
        system: str | None = None,
    ) -> torch.Tensor:
        """[1, T, C] exactly as PandaGPT concatenated them."""
        prompt = self.history(turns or [], question)
        bos = torch.tensor([self.tokenizer.bos_token_id], device=self.device)
        parts = [self.llama_model.model.model.embed_tokens(bos)]
        if system:
            parts.append(self.embed(system + "\n"))
        if features:
            dtype = self.llama_proj.weight.dtype
            projected = [self.llama_proj(f.to(self.device, dtype).reshape(1, -1)) for f in features]
            soft = torch.cat(projected).sum(dim=0, keepdim=True)  # [1, C]
            parts += [self.embed("### Human: <Img>"), soft]
            parts.append(self.embed("</Img> " + prompt + "\n### Assistant:"))
        else:
            parts.append(self.embed("### Human: " + prompt + "\n### Assistant:"))
        return torch.cat(parts, dim=0).unsqueeze(0)

    @torch.no_grad()
    def generate_ids(self, inputs_embeds: torch.Tensor, max_new_tokens: int = 32) -> list[int]:
        """Greedy token ids, cut the way a `###`/EOS stop cuts them (see `cut_at_stop`)."""
        eos = self.tokenizer.eos_token_id
        ids = self._greedy(inputs_embeds, max_new_tokens, eos_token_id=eos)
        return cut_at_stop(self.tokenizer, ids, eos)

    @torch.no_grad()
    def generate_fixed(self, inputs_embeds: torch.Tensor, num_tokens: int) -> TimedIds:
        """Greedy, exactly `num_tokens` new ids, with the time each one arrived.

        The benchmark's counterpart of the service's `ignore_eos` + `max_tokens`.
        Not `min_new_tokens`: that masks EOS out of the logits, so greedy would
        pick the runner-up where vLLM's `ignore_eos` emits EOS and goes on; here
        no EOS is set, generation never stops early and the ids stay comparable.
        """
        streamer = _TimingStreamer()
        ids = self._greedy(inputs_embeds, num_tokens, eos_token_id=None, streamer=streamer)
        if len(ids) != num_tokens:
            raise RuntimeError(f"reference generated {len(ids)} ids, wanted {num_tokens}")
        return TimedIds(ids, streamer.token_times)

    def _greedy(
        self,
        inputs_embeds: torch.Tensor,
        max_new_tokens: int,
        eos_token_id: int | None,
        streamer: BaseStreamer | None = None,
    ) -> list[int]:
        """New ids of one greedy `generate(inputs_embeds=…)`, no padding (one sequence)."""
        out = self.llama_model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=torch.ones(
                inputs_embeds.shape[:2], dtype=torch.long, device=self.device
            ),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos_token_id,
            pad_token_id=self.tokenizer.eos_token_id,
            streamer=streamer,
        )
        return list(out[0].tolist())


class _TimingStreamer(BaseStreamer):
    """Records when generate() pushes ids; its first push is the (empty) prompt."""

    def __init__(self) -> None:
        self._seen_prompt = False
        self.token_times: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        self.token_times.append(time.perf_counter())

    def end(self) -> None:
        return None


def cut_at_stop(tokenizer, ids: list[int], eos: int, stop: str = "###") -> list[int]:
    """Ids up to and including the EOS or the token that completes `stop` (vLLM's cut)."""
    for k, tok in enumerate(ids):
        if tok == eos:
            return ids[: k + 1]
        if stop in tokenizer.decode(ids[: k + 1], skip_special_tokens=True):
            return ids[: k + 1]
    return ids
