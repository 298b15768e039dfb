"""Runs vLLM's own benchmark client (`vllm.benchmarks.serve`) against a base URL: the
text workload (`random`) and the image one (`random-mm`, one 224×224 image a request),
each writing its result JSON to RESULT_DIR/<dataset>.json.

    python -m tests.e2e.vllm_bench_client BASE_URL MODEL TOKENIZER_DIR RESULT_DIR
"""

from __future__ import annotations

import argparse
import sys

from vllm.benchmarks.serve import add_cli_args, main

WORKLOADS = {
    "random": ["--random-input-len", "48", "--random-output-len", "16"],
    "random-mm": [
        "--random-input-len", "16",
        "--random-output-len", "8",
        "--random-mm-base-items-per-request", "1",
        "--random-mm-num-mm-items-range-ratio", "0",
        "--random-mm-limit-mm-per-prompt", '{"image": 1, "video": 0}',
        "--random-mm-bucket-config", "{(224, 224, 1): 1.0}",
    ],
}  # fmt: skip


def run(base_url: str, model: str, tokenizer: str, result_dir: str) -> None:
    for dataset, options in WORKLOADS.items():
        parser = argparse.ArgumentParser()
        add_cli_args(parser)
        args = parser.parse_args(
            [
                "--backend", "openai-chat",
                "--base-url", base_url,
                "--endpoint", "/v1/chat/completions",
                "--model", model,
                "--tokenizer", tokenizer,
                "--dataset-name", dataset,
                *options,
                "--num-prompts", "6",
                "--max-concurrency", "3",
                "--ignore-eos",
                "--save-result",
                "--result-dir", result_dir,
                "--result-filename", f"{dataset}.json",
            ]
        )  # fmt: skip
        main(args)


if __name__ == "__main__":
    run(*sys.argv[1:5])
