"""`mqa-convert import` from Whisper + Qwen (both Qwen layouts, both Whisper layouts): the imported checkpoint gives
transformers' Qwen2ForCausalLM logits at TP=1, TP=2 and PP=2 (loaded as a run's `init_from` loads it), keeps every
source row, initialises the new vocabulary rows, and refuses bad input without writing anything."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import layout_logits, run_convert
from convert_sources import QWEN_VOCAB, text_tokens
from safetensors.torch import load_file, save_file

from megatron_qwen_audio.convert.megatron_checkpoint import CheckpointReader
from megatron_qwen_audio.text.special_tokens import padded_vocab_size

FP32 = ("--dtype", "fp32")


@pytest.fixture(scope="module")
def imported(sources, tmp_path_factory) -> dict:
    root, out = sources["root"], tmp_path_factory.mktemp("imported")
    run_convert("import", "--whisper", str(root / "whisper"), "--qwen", str(root / "qwen2"), "--out",
                str(out / "hf"), "--tp", "2", *FP32)
    run_convert("import", "--whisper", str(root / "whisper_openai.pt"), "--qwen", str(root / "qwen_v1"), "--out",
                str(out / "v1"), *FP32)
    return {"hf": out / "hf", "v1": out / "v1", "root": out}


def test_layout_logits_equal_transformers_qwen2(sources, imported):
    with torch.no_grad():
        expected = sources["qwen2"](text_tokens()).logits
    results = layout_logits(imported["hf"], {1: "1x1", 2: "2x1,1x2"}, imported["root"] / "logits")
    assert sorted(results) == ["1x1", "1x2", "2x1"]
    for layout, result in results.items():
        logits = result["text"]
        assert logits.shape[-1] >= padded_vocab_size(), layout
        torch.testing.assert_close(logits[..., :QWEN_VOCAB], expected, rtol=0, atol=1e-5, msg=layout)


def test_v1_layout_and_openai_whisper_import_to_the_same_tensors(imported):
    hf, v1 = CheckpointReader(imported["hf"]), CheckpointReader(imported["v1"])
    assert hf.names == v1.names
    for name in hf.names:
        assert torch.equal(hf.read(name), v1.read(name)), name


def test_whisper_tensors_land_in_place_and_the_adapter_is_fresh(sources, imported):
    reader = CheckpointReader(imported["hf"])
    encoder = sources["whisper"].encoder.state_dict()
    assert torch.equal(reader.read("audio_encoder.blocks.1.attn.key.weight"),
                       encoder["layers.1.self_attn.k_proj.weight"])
    assert torch.equal(reader.read("audio_encoder.ln_post.weight"), encoder["layer_norm.weight"])
    assert torch.equal(reader.read("audio_encoder.positional_embedding"), encoder["embed_positions.weight"])
    embedding_std = sources["qwen2"].model.embed_tokens.weight.std()
    bos_eos = reader.read("audio_encoder.audio_bos_eos_token.weight")
    assert 0.5 < bos_eos.std() / embedding_std < 2.0  # at the scale of the token embeddings, not N(0, 1)
    assert reader.read("audio_encoder.proj.weight").abs().max() <= 32 ** -0.5


def test_vocabulary_rows_kept_and_new_rows_initialised(sources, imported):
    reader = CheckpointReader(imported["hf"])
    source = sources["qwen2"].model.embed_tokens.weight.detach()
    embedding = reader.read("embedding.word_embeddings.weight")
    vocab = padded_vocab_size()
    assert torch.equal(embedding[:QWEN_VOCAB], source)
    new_rows = embedding[QWEN_VOCAB:vocab]
    assert len(torch.unique(new_rows, dim=0)) == vocab - QWEN_VOCAB  # every new token distinct
    torch.testing.assert_close(new_rows.mean(0), source.mean(0), rtol=0, atol=0.01)
    assert not embedding[vocab:].any()  # tensor-parallel padding


def _copy_hf_source(src, dst, edit_state=None, edit_config=None):
    shutil.copytree(src, dst)
    if edit_state is not None:
        state = load_file(str(dst / "model.safetensors"))
        edit_state(state)
        save_file(state, str(dst / "model.safetensors"))
    if edit_config is not None:
        config = json.loads((dst / "config.json").read_text())
        edit_config(config)
        (dst / "config.json").write_text(json.dumps(config))
    return dst


BAD_QWEN = {
    "missing": (lambda state: state.pop("model.layers.2.mlp.up_proj.weight"), None,
                "model.layers.2.mlp.up_proj.weight: missing"),
    "unexpected": (lambda state: state.update({"model.layers.0.mlp.extra.weight": torch.zeros(2)}), None,
                   "model.layers.0.mlp.extra.weight: unexpected"),
    "shape": (lambda state: state.update({"model.norm.weight": torch.ones(81)}), None,
              "decoder.final_layernorm.weight (from model.norm.weight): shape [81]"),
    "config": (None, lambda config: config.update(intermediate_size=120),
               "decoder.layers.0.mlp.linear_fc2.weight (from model.layers.0.mlp.down_proj.weight): shape [80, 100] "
               "but the model config gives [80, 120]"),


    "layout": (None, None, "--tp/--pp/--stage-layers: model.heads=10 is not divisible by parallel.tensor_parallel=4"),
}
LAYOUT_FLAGS = {"layout": ("--tp", "4")}


@pytest.mark.parametrize("case", sorted(BAD_QWEN))
def test_bad_input_fails_naming_the_tensor_and_writes_nothing(sources, tmp_path, case):
    edit_state, edit_config, message = BAD_QWEN[case]
    qwen = _copy_hf_source(sources["root"] / "qwen2", tmp_path / "qwen2", edit_state, edit_config)
    out = tmp_path / "out"
    finished = run_convert("import", "--whisper", str(sources["root"] / "whisper"), "--qwen", str(qwen),
                           "--out", str(out), *LAYOUT_FLAGS.get(case, ()), expect_ok=False)
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert message in finished.stderr.strip().splitlines()[-1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["qwen2"]  # no output, no partial folder
