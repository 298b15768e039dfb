"""GPU check of the PandaGPT language side in fp16 (what PandaGPT ran), without vLLM.

    pandagpt bench gpu prompt-parity [--size small] [--max-new-tokens 32] [--json OUT]

vLLM cannot be carried to the GPU machine, so this compares the parts that
can be: (1) our prompt-embedding builder (converted weights: `embed_tokens`
read alone + `llama_proj`) against the reference PandaGPT `inputs_embeds`
(transformers + peft on the UNCONVERTED demo sources), and (2) reference
greedy generation from our embeds against generation from its own embeds;
(3), for information, the merged conversion run as a plain transformers Llama
from our embeds. Demo weights (`--size small`) are made on the fly on CPU.
Needs torch, transformers, peft, safetensors, tokenizers; runs in well under
2 minutes. Exit code 1 when (1) or (2) fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: E402

from bench.cli import standalone  # noqa: E402
from reference.pandagpt import ReferencePandaGPT, cut_at_stop  # noqa: E402
from service.weights.demo import SIZES, make_demo_weights  # noqa: E402
from service.worker.projector import Projector  # noqa: E402
from service.worker.prompt import Conversation, PromptBuilder, Turn, load_embed_tokens  # noqa: E402

# Token rows are table lookups (exact); the soft token is a sum of fp16
# matmuls whose kernels may differ with the batch shape: a few fp16 ulps.
SOFT_TOKEN_ATOL = 2e-2


def cases(out_dim: int) -> list[dict]:
    def feat(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.nn.functional.normalize(torch.randn(out_dim, generator=g), dim=0)

    g = torch.Generator().manual_seed(40)
    video = torch.nn.functional.normalize(torch.randn(15, out_dim, generator=g), dim=-1).mean(0)
    return [
        {"name": "image", "q": "What is in this image?", "turns": [], "f": [feat(1)]},
        {"name": "image+audio", "q": "Describe both.", "turns": [], "f": [feat(2), feat(3)]},
        {"name": "video", "q": "What happens in the video?", "turns": [], "f": [video]},
        {
            "name": "multi-turn",
            "q": "Where is it going?",
            "turns": [("What is in this image?", "A dog."), ("What colour?", "Brown.")],
            "f": [feat(5)],
        },
        {"name": "text-only", "q": "Tell me a story about a cat.", "turns": [], "f": []},
        {
            "name": "system",
            "q": "What is this?",
            "turns": [],
            "f": [feat(6)],
            "system": "You are a helpful assistant.",
        },
    ]


def conversation(case: dict) -> Conversation:
    turns: list[Turn] = []
    for q, a in case["turns"]:
        turns += [Turn("user", q), Turn("assistant", a)]
    return Conversation([*turns, Turn("user", case["q"])], system=case.get("system"))


@torch.no_grad()
def greedy(model, tokenizer, embeds: torch.Tensor, max_new: int) -> list[int]:
    eos = tokenizer.eos_token_id
    out = model.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
        max_new_tokens=max_new,
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return cut_at_stop(tokenizer, out[0].tolist(), eos)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dir", type=Path, default=None, help="demo weights dir (default: tmp)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--device", default="cuda", help="cpu only for a dry run of the script")
    parser.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")


def run(args: argparse.Namespace) -> int:
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_prompt_parity: no CUDA device; this check is for the GPU machine")
        return 2
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    start = time.perf_counter()

    root = args.dir or Path(tempfile.mkdtemp(prefix="pandagpt-gpu-parity-"))
    model_dir = make_demo_weights(root, seed=0, size=args.size)
    sources = root / "sources"
    delta = sources / f"pandagpt-demo-{args.size}" / "pytorch_model.pt"
    made = time.perf_counter() - start

    reference = ReferencePandaGPT(sources / "vicuna", delta, dtype=dtype).to(device)
    llm_dir = model_dir / "llm"
    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
    builder = PromptBuilder(tokenizer, load_embed_tokens(llm_dir, device, dtype))
    projector = Projector.load(model_dir / "projector.safetensors", device, dtype)
    merged = LlamaForCausalLM.from_pretrained(str(llm_dir), dtype=dtype).to(device).eval()

    out_dim = projector.in_dim
    rows, ok = [], True
    for case in cases(out_dim):
        ref = reference.inputs_embeds(case["q"], case["turns"], case["f"], case.get("system"))
        built = builder.build(conversation(case), projector.soft_token(case["f"]))
        mine = built.embeds.unsqueeze(0)
        same_shape = mine.shape == ref.shape
        token_rows = [i for i, t in enumerate(built.token_ids) if t is not None]
        soft_rows = [i for i, t in enumerate(built.token_ids) if t is None]
        token_diff = (mine[0, token_rows] - ref[0, token_rows]).abs().max().item()
        soft_diff = (
            (mine[0, soft_rows] - ref[0, soft_rows]).abs().max().item() if soft_rows else 0.0
        )
        ref_ids = reference.generate_ids(ref, args.max_new_tokens)
        from_ours = reference.generate_ids(mine, args.max_new_tokens)
        merged_ids = greedy(merged, tokenizer, mine, args.max_new_tokens)
        passed = (
            same_shape
            and token_diff == 0.0
            and soft_diff <= SOFT_TOKEN_ATOL
            and from_ours == ref_ids
        )
        ok &= passed
        rows.append(
            {
                "case": case["name"],
                "prompt_rows": int(mine.shape[1]),
                "token_rows_max_abs_diff": token_diff,
                "soft_token_max_abs_diff": soft_diff,
                "reference_from_our_embeds_same_ids": from_ours == ref_ids,
                "merged_llm_from_our_embeds_same_ids": merged_ids == ref_ids,
                "generated_tokens": len(ref_ids),
                "pass": passed,
            }
        )
    summary = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "size": args.size,
        "demo_weights_s": round(made, 2),
        "total_s": round(time.perf_counter() - start, 2),
        "cases": rows,
        "same_ids_reference_from_ours": sum(r["reference_from_our_embeds_same_ids"] for r in rows),
        "same_ids_merged_from_ours": sum(r["merged_llm_from_our_embeds_same_ids"] for r in rows),
        "n_cases": len(rows),
        "pass": ok,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
