"""The model zoo: transformers models built from config classes with random weights (no hub).

`ZOO` maps a name to a `ZooModel`: a config factory, the model class, an input factory, and
the size ("tiny" for CI, "full" for the slow full-size cases). Text inputs have real padding
in their attention masks (the second row of each batch ends with padding), not just ones.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

VOCAB = 1000
SEQ = 8
BATCH = 2
PAD = 3  # padded positions at the end of the second row
TINY = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128)


@dataclasses.dataclass
class ZooModel:
    """One zoo entry: how to build the model and its example inputs."""

    name: str
    family: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], dict[str, Any]]
    slow: bool = False
    tolerance: Any = "approx"
    xfail: str | None = None   # why fx2nnef or tract cannot run it (the test is a strict xfail)
    onnx: bool | str = True    # cross-check through torch.onnx.export, or why that path cannot run it


def _seeded(build: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
    """Return a builder that seeds torch first, so every run builds the same random weights."""
    def seeded():
        torch.manual_seed(0)
        return build().eval()
    return seeded


def _from_config(model_class: str, config_class: str, **options) -> Callable[[], torch.nn.Module]:
    """Return a builder of transformers' `model_class` from `config_class(**options)`."""
    def build():
        import transformers
        config = getattr(transformers, config_class)(**options)
        return getattr(transformers, model_class)(config)
    return _seeded(build)


def text_inputs(seq: int = SEQ, vocab: int = VOCAB, token_types: bool = False) -> Callable[[], dict[str, Any]]:
    """Return a factory of {input_ids, attention_mask}: batch 2, the second row right-padded."""
    def make():
        generator = torch.Generator().manual_seed(1)
        ids = torch.randint(3, vocab, (BATCH, seq), generator=generator)
        mask = torch.ones(BATCH, seq, dtype=torch.long)
        mask[1, seq - PAD:] = 0
        ids[1, seq - PAD:] = 0
        inputs = {"input_ids": ids, "attention_mask": mask}
        if token_types:
            types = torch.zeros(BATCH, seq, dtype=torch.long)
            types[:, seq // 2:] = 1
            inputs["token_type_ids"] = types
        return inputs
    return make


def seq2seq_inputs(seq: int = SEQ, vocab: int = VOCAB, decoder_seq: int = 5) -> Callable[[], dict[str, Any]]:
    """Return a factory of encoder inputs (padded) plus decoder_input_ids."""
    encoder = text_inputs(seq, vocab)
    def make():
        inputs = encoder()
        generator = torch.Generator().manual_seed(2)
        inputs["decoder_input_ids"] = torch.randint(3, vocab, (BATCH, decoder_seq), generator=generator)
        return inputs
    return make


def image_inputs(size: int = 32, channels: int = 3) -> Callable[[], dict[str, Any]]:
    """Return a factory of {pixel_values}: a batch of 2 normalized random images."""
    def make():
        generator = torch.Generator().manual_seed(3)
        return {"pixel_values": torch.randn(BATCH, channels, size, size, generator=generator)}
    return make


def audio_inputs(samples: int = 1600) -> Callable[[], dict[str, Any]]:
    """Return a factory of {input_values, attention_mask}: raw waveforms, the second one padded."""
    def make():
        generator = torch.Generator().manual_seed(4)
        values = torch.randn(BATCH, samples, generator=generator)
        mask = torch.ones(BATCH, samples, dtype=torch.long)
        mask[1, samples * 3 // 4:] = 0
        values[1, samples * 3 // 4:] = 0.0
        return {"input_values": values, "attention_mask": mask}
    return make


def whisper_inputs(mels: int = 16, frames: int = 32, decoder_seq: int = 4) -> Callable[[], dict[str, Any]]:
    """Return a factory of {input_features, decoder_input_ids} for a tiny Whisper."""
    def make():
        generator = torch.Generator().manual_seed(5)
        return {"input_features": torch.randn(BATCH, mels, frames, generator=generator),
                "decoder_input_ids": torch.randint(3, VOCAB, (BATCH, decoder_seq), generator=generator)}
    return make


def _entries() -> list[ZooModel]:
    """Return every zoo entry."""
    tiny = dict(TINY, vocab_size=VOCAB, max_position_embeddings=64)
    decoder = dict(tiny, use_cache=False)
    vision = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128,
                  image_size=32, patch_size=8)
    entries = [
        # text encoders
        ZooModel("bert", "encoder", _from_config("BertModel", "BertConfig", **tiny), text_inputs(token_types=True)),
        ZooModel("albert", "encoder", _from_config("AlbertModel", "AlbertConfig", embedding_size=32, **tiny),
                 text_inputs(token_types=True)),
        ZooModel("distilbert", "encoder", _from_config("DistilBertModel", "DistilBertConfig", vocab_size=VOCAB,
                 n_layers=2, dim=64, n_heads=4, hidden_dim=128, max_position_embeddings=64), text_inputs()),
        ZooModel("roberta", "encoder", _from_config("RobertaModel", "RobertaConfig", pad_token_id=1, **tiny),
                 text_inputs(), onnx="tract 0.23.9's ONNX CumSum fails on the integer padding mask "
                                     "(position ids): 'Evaluating node_cumsum CumSum: TDim is not a number'"),
        ZooModel("electra", "encoder", _from_config("ElectraModel", "ElectraConfig", embedding_size=32, **tiny),
                 text_inputs(token_types=True)),
        ZooModel("deberta-v2", "encoder", _from_config("DebertaV2Model", "DebertaV2Config", **tiny,
                 relative_attention=True, position_buckets=16, max_relative_positions=32,
                 pos_att_type=["p2c", "c2p"]), text_inputs()),
        # causal decoders, no KV cache
        ZooModel("gpt2", "decoder", _from_config("GPT2Model", "GPT2Config", vocab_size=VOCAB, n_layer=2, n_embd=64,
                 n_head=4, n_positions=64, use_cache=False), text_inputs()),
        ZooModel("llama", "decoder", _from_config("LlamaModel", "LlamaConfig", num_key_value_heads=2, **decoder),
                 text_inputs()),
        ZooModel("mistral", "decoder", _from_config("MistralModel", "MistralConfig", num_key_value_heads=2,
                 sliding_window=None, **decoder), text_inputs()),
        ZooModel("qwen2", "decoder", _from_config("Qwen2Model", "Qwen2Config", num_key_value_heads=2, **decoder),
                 text_inputs()),
        ZooModel("phi", "decoder", _from_config("PhiModel", "PhiConfig", **decoder), text_inputs()),
        ZooModel("gemma", "decoder", _from_config("GemmaModel", "GemmaConfig", num_key_value_heads=2, head_dim=16,
                 **decoder), text_inputs()),
        ZooModel("gpt-neox", "decoder", _from_config("GPTNeoXModel", "GPTNeoXConfig", **decoder), text_inputs()),
        ZooModel("opt", "decoder", _from_config("OPTModel", "OPTConfig", vocab_size=VOCAB, num_hidden_layers=2,
                 hidden_size=64, num_attention_heads=4, ffn_dim=128, word_embed_proj_dim=64,
                 max_position_embeddings=64, use_cache=False), text_inputs()),
        ZooModel("mixtral", "decoder", _from_config("MixtralModel", "MixtralConfig", num_key_value_heads=2,
                 num_local_experts=4, num_experts_per_tok=2, **decoder), text_inputs(),
                 onnx="torch.onnx.export has no ONNX form of transformers' custom op grouped_mm_fallback "
                      "(ConversionError)"),
        ZooModel("bloom", "decoder", _from_config("BloomModel", "BloomConfig", vocab_size=VOCAB, n_layer=2,
                 hidden_size=64, n_head=4, use_cache=False), text_inputs()),
        # encoder-decoders
        ZooModel("t5", "seq2seq", _from_config("T5Model", "T5Config", vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128,
                 num_layers=2, num_heads=4, use_cache=False), seq2seq_inputs(),
                 onnx="torch.onnx.export (dynamo) fails in its decomposition step: 'Cannot view a tensor with "
                      "shape [2, 8, 4, 16] and strides (512, 16, 128, 1) as (2, 8, 64)' in T5Attention"),
        ZooModel("bart", "seq2seq", _from_config("BartModel", "BartConfig", vocab_size=VOCAB, d_model=64,
                 encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64, use_cache=False),
                 seq2seq_inputs()),
        # vision
        ZooModel("vit", "vision", _from_config("ViTModel", "ViTConfig", **vision), image_inputs()),
        ZooModel("deit", "vision", _from_config("DeiTModel", "DeiTConfig", **vision), image_inputs()),
        ZooModel("convnext", "vision", _from_config("ConvNextModel", "ConvNextConfig", num_channels=3,
                 hidden_sizes=[16, 32], depths=[1, 1], num_stages=2), image_inputs()),
        ZooModel("resnet", "vision", _from_config("ResNetModel", "ResNetConfig", embedding_size=16,
                 hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"), image_inputs()),
        ZooModel("mobilenet-v2", "vision", _from_config("MobileNetV2Model", "MobileNetV2Config", image_size=32,
                 depth_multiplier=0.25), image_inputs()),
        ZooModel("swin", "vision", _from_config("SwinModel", "SwinConfig", image_size=32, patch_size=4, embed_dim=16,
                 depths=[1, 1], num_heads=[2, 2], window_size=4), image_inputs(),
                 onnx="torch.onnx.export (dynamo) fails in its decomposition step: 'Cannot view a tensor with "
                      "shape [8, 16, 2, 8] and strides (256, 8, 128, 1) as (8, 16, 16)' in SwinSelfAttention"),
        ZooModel("segformer", "vision", _from_config("SegformerModel", "SegformerConfig", num_encoder_blocks=2,
                 depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2],
                 num_attention_heads=[1, 2], mlp_ratios=[2, 2]), image_inputs()),
        ZooModel("dinov2", "vision", _from_config("Dinov2Model", "Dinov2Config", **vision), image_inputs()),
        # F.unfold / F.fold around its attention: index and index_put on non-leading axes. The default
        # initializer range (0.02) makes every activation vanish to 0 after a few blocks, which would check
        # nothing: 0.5 keeps them O(1)
        ZooModel("mobilevit-v2", "vision", _from_config("MobileViTV2Model", "MobileViTV2Config", image_size=64,
                 width_multiplier=0.25, n_attn_blocks=[1, 1, 1], patch_size=2, initializer_range=0.5),
                 image_inputs(size=64), onnx="tract 0.23.9's ONNX loader has no Col2Im: 'Translating node "
                                             "\"node_col2im\" Unimplemented(Col2Im) ToTypedTranslator'"),
        # audio
        ZooModel("wav2vec2", "audio", _from_config("Wav2Vec2Model", "Wav2Vec2Config", hidden_size=64,
                 num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32),
                 conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                 num_conv_pos_embedding_groups=4, feat_extract_norm="layer"), audio_inputs(),
                 onnx="tract 0.23.9's ONNX loader cannot load it: 'Translating node \"node_Expand_74\" "
                      "MultiBroadcastTo ToTypedTranslator'"),
        ZooModel("whisper", "audio", _from_config("WhisperModel", "WhisperConfig", vocab_size=VOCAB, d_model=64,
                 encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
                 encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16, max_source_positions=16,
                 max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                 use_cache=False), whisper_inputs()),
        # full size: the ALBERT-base scenario
        ZooModel("albert-base", "encoder", _from_config("AlbertModel", "AlbertConfig", vocab_size=30000,
                 embedding_size=128, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                 num_hidden_layers=12), text_inputs(seq=7, vocab=30000, token_types=True), slow=True),
    ]
    return entries


ZOO: dict[str, ZooModel] = {entry.name: entry for entry in _entries()}
