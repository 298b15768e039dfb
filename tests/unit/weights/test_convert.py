"""`pandagpt convert` on the demo sources: the merge arithmetic, the PEFT
adapter, the BOS/EOS fix, the manifest, and errors that name file and key."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from service.weights.convert import convert, run_convert_cli
from service.weights.delta import DeltaError
from service.weights.layout import Manifest, ModelLayout, sha256_tree
from service.weights.llm_io import iter_tensors, source_files

LAYER_KEY = "llama_model.base_model.model.model.layers.{}.self_attn.{}.lora_{}.default.weight"


def tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    return dict(iter_tensors(source_files(model_dir)))


def delta_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_merge_adds_scaled_b_times_a(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    manifest = convert(vicuna, delta, imagebind, tmp_path / "m", imagebind_config=ib_config)
    src, out, lora = tensors(vicuna), tensors(tmp_path / "m" / "llm"), delta_state(delta)
    assert set(src) == set(out)
    scale = 32 / 32
    for name, w in src.items():
        if ".self_attn." in name and name.endswith("_proj.weight"):
            layer, proj = int(name.split(".")[2]), name.split(".")[4]
            a = lora[LAYER_KEY.format(layer, proj, "A")]
            b = lora[LAYER_KEY.format(layer, proj, "B")]
            torch.testing.assert_close(out[name], w + scale * (b @ a), rtol=0, atol=1e-6)
            assert not torch.equal(out[name], w), "the LoRA must change the weights"
        else:
            assert torch.equal(out[name], w), name
    assert manifest.merged and manifest.lora["r"] == 32 and manifest.lora["alpha"] == 32


def test_config_takes_bos_eos_from_the_tokenizer(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    assert json.loads((vicuna / "config.json").read_text())["eos_token_id"] == 1  # v0 quirk
    convert(vicuna, delta, imagebind, tmp_path / "m", imagebind_config=ib_config)
    llm = tmp_path / "m" / "llm"
    for name in ("config.json", "generation_config.json"):
        cfg = json.loads((llm / name).read_text())
        assert (cfg["bos_token_id"], cfg["eos_token_id"]) == (1, 2), name
    assert (llm / "tokenizer.json").exists() and (llm / "tokenizer_config.json").exists()


def test_manifest_and_projector(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    convert(vicuna, delta, imagebind, tmp_path / "m", imagebind_config=ib_config, name="panda")
    layout = ModelLayout(tmp_path / "m")
    m = Manifest.load(layout.manifest)
    assert (m.served_model_name, m.hidden_size, m.num_layers, m.imagebind_out_dim) == (
        "panda",
        128,
        2,
        32,
    )
    assert m.sources["delta"]["sha256"] == sha256_tree(delta)
    assert m.sources["imagebind"]["sha256"] == sha256_tree(imagebind)
    with safe_open(str(layout.projector), "pt") as fh:
        torch.testing.assert_close(
            fh.get_tensor("llama_proj.weight"), delta_state(delta)["llama_proj.weight"]
        )
    assert layout.imagebind.exists() and layout.imagebind_config.exists()


def test_keep_lora_writes_a_peft_adapter(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    manifest = convert(
        vicuna, delta, imagebind, tmp_path / "m", imagebind_config=ib_config, keep_lora=True
    )
    assert not manifest.merged
    name = manifest.served_model_name
    assert name == "pandagpt-demo-tiny"  # from the delta's folder
    src, out = tensors(vicuna), tensors(tmp_path / "m" / "llm")
    assert all(torch.equal(out[k], v) for k, v in src.items()), "base left unmerged"
    adapter = ModelLayout(tmp_path / "m").lora_dir(name)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 32, 32)
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert len(keys) == 2 * 4 * 2
    assert "base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight" in keys


def test_keys_without_default_are_accepted(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    plain = tmp_path / "plain" / "pytorch_model.pt"
    plain.parent.mkdir()
    torch.save({k.replace(".default", ""): v for k, v in delta_state(delta).items()}, plain)
    convert(vicuna, plain, imagebind, tmp_path / "a", imagebind_config=ib_config)
    convert(vicuna, delta, imagebind, tmp_path / "b", imagebind_config=ib_config)
    a, b = tensors(tmp_path / "a" / "llm"), tensors(tmp_path / "b" / "llm")
    assert all(torch.equal(a[k], b[k]) for k in a)


def broken_delta(tmp_path: Path, delta: Path, edit) -> Path:
    state = delta_state(delta)
    edit(state)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    return path


def test_delta_for_another_model_size(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources

    def other_size(state: dict) -> None:  # a "7B" delta against a "13B" Vicuna, in small
        state["llama_proj.weight"] = torch.zeros(256, 32)
        state["llama_proj.bias"] = torch.zeros(256)

    bad = broken_delta(tmp_path, delta, other_size)
    with pytest.raises(DeltaError, match=r"broken\.pt.*'llama_proj\.weight'.*hidden size 128"):
        convert(vicuna, bad, imagebind, tmp_path / "m", imagebind_config=ib_config)


def test_missing_lora_key(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    key = LAYER_KEY.format(1, "v_proj", "B")
    bad = broken_delta(tmp_path, delta, lambda s: s.pop(key))
    with pytest.raises(DeltaError, match=rf"broken\.pt.*{key.replace('.', '[.]')}.*missing"):
        convert(vicuna, bad, imagebind, tmp_path / "m", imagebind_config=ib_config)


def test_wrong_lora_shape(demo, tmp_path: Path, sources) -> None:
    vicuna, delta, imagebind, ib_config = sources
    key = LAYER_KEY.format(0, "k_proj", "A")
    bad = broken_delta(tmp_path, delta, lambda s: s.__setitem__(key, torch.zeros(32, 64)))
    with pytest.raises(DeltaError, match=r"k_proj\.lora_A.*\(32, 64\), expected \(32, 128\)"):
        convert(vicuna, bad, imagebind, tmp_path / "m", imagebind_config=ib_config)


def test_cli_reports_errors_with_exit_code_2(demo, tmp_path: Path, sources, capsys) -> None:
    vicuna, delta, imagebind, ib_config = sources
    bad = broken_delta(tmp_path, delta, lambda s: s.pop("llama_proj.bias"))
    args = Namespace(
        vicuna=vicuna,
        delta=bad,
        imagebind=imagebind,
        output=tmp_path / "m",
        imagebind_config=ib_config,
        keep_lora=False,
        name=None,
    )
    assert run_convert_cli(args) == 2
    assert "'llama_proj.bias'" in capsys.readouterr().out
    assert not (tmp_path / "m" / "pandagpt.json").exists()


def test_early_llama_tokenizer_class_name_is_fixed(demo, tmp_path: Path, sources) -> None:
    import shutil

    vicuna, delta, imagebind, ib_config = sources
    old = tmp_path / "vicuna-old"
    shutil.copytree(vicuna, old)
    cfg = json.loads((old / "tokenizer_config.json").read_text())
    (old / "tokenizer_config.json").write_text(
        json.dumps({**cfg, "tokenizer_class": "LLaMATokenizer"})
    )
    convert(old, delta, imagebind, tmp_path / "m", imagebind_config=ib_config)
    fixed = json.loads((tmp_path / "m" / "llm" / "tokenizer_config.json").read_text())
    assert fixed["tokenizer_class"] == "LlamaTokenizer"


def test_sentencepiece_only_v0_tokenizer(demo, tmp_path: Path, sources) -> None:
    """A v0 dir as old conversions left it: tokenizer.model only, class "LLaMATokenizer".

    The converted tokenizer must split PandaGPT's prompt pieces exactly as
    SentencePiece does (what the reference's slow LlamaTokenizer called).
    """
    import shutil

    spm = pytest.importorskip("sentencepiece")
    from transformers import AutoTokenizer

    from service.weights.tokenizer import CORPUS

    vicuna, delta, imagebind, ib_config = sources
    old = tmp_path / "vicuna-sp"
    shutil.copytree(vicuna, old)
    (old / "tokenizer.json").unlink()
    (tmp_path / "corpus.txt").write_text(CORPUS)
    spm.SentencePieceTrainer.train(  # LLaMA's settings: BPE, byte fallback, no normalisation
        input=str(tmp_path / "corpus.txt"),
        model_prefix=str(old / "tokenizer"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        minloglevel=2,
    )
    (old / "tokenizer.vocab").unlink()
    config = {"tokenizer_class": "LLaMATokenizer", "bos_token": "<s>", "eos_token": "</s>"}
    (old / "tokenizer_config.json").write_text(json.dumps(config))
    manifest = convert(old, delta, imagebind, tmp_path / "m", imagebind_config=ib_config)
    assert (manifest.bos_token_id, manifest.eos_token_id) == (1, 2)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "m" / "llm"))
    sp = spm.SentencePieceProcessor(model_file=str(old / "tokenizer.model"))
    for piece in (
        "### Human: <Img>",
        "</Img> What is in this image?\n### Assistant: A dog.\n### Human: Why?\n### Assistant:",
        "### Human: Tell me a story.\n### Assistant:",
        "You are a helpful assistant.\n",
    ):
        assert tok.encode(piece, add_special_tokens=False) == sp.encode(piece), piece


def test_imagebind_mismatch_fails_before_the_llm_pass(demo, tmp_path: Path, sources) -> None:
    from service.weights.convert import ConversionError
    from service.weights.imagebind import ImageBindWeightsError

    vicuna, delta, imagebind, ib_config = sources
    with pytest.raises(ConversionError, match=r"takes 32-d features.*produces 1024-d"):
        convert(vicuna, delta, imagebind, tmp_path / "m")  # tiny .pth, default huge config
    kwargs = json.loads(ib_config.read_text())["constructor_args"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**kwargs, "vision_embed_dim": 128}))
    with pytest.raises(ImageBindWeightsError, match=r"imagebind .*imagebind\.pth.*vision"):
        convert(vicuna, delta, imagebind, tmp_path / "m", imagebind_config=wrong)
    assert not (tmp_path / "m" / "llm" / "model.safetensors").exists()
