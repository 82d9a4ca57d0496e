"""Export transformers models that are not in the zoo (random weights from config classes, nothing
downloaded) with check_io=True, as a new user would; print one line per model.

    python benchmarks/unseen_models.py              # all 25
    python benchmarks/unseen_models.py mixtral t5   # chosen ones
"""
import logging
import sys
import tempfile
import warnings

import torch
import transformers as T

import fx2nnef
from fx2nnef.targets import TractNNEF

warnings.filterwarnings("ignore")
logging.getLogger("fx2nnef").setLevel(logging.ERROR)

S = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)


def text(vocab=500, seq=9, tt=False):
    """Return two sequences of token ids, the second padded after 6 tokens."""
    ids = torch.randint(5, vocab, (2, seq), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if tt:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def img(size=32, ch=3):
    """Return a batch of two random images."""
    return {"pixel_values": torch.randn(2, ch, size, size)}


# name -> () -> (model, inputs): small configs of 25 architectures, all outside tests/zoo/models.py but Mixtral
CASES = {
 "mpnet": lambda: (T.MPNetModel(T.MPNetConfig(vocab_size=500, **S)), text()),
 "xlm-roberta": lambda: (T.XLMRobertaModel(T.XLMRobertaConfig(vocab_size=500, **S)), text()),
 "camembert": lambda: (T.CamembertModel(T.CamembertConfig(vocab_size=500, **S)), text()),
 "deberta": lambda: (T.DebertaModel(T.DebertaConfig(vocab_size=500, **S)), text()),
 "funnel": lambda: (T.FunnelModel(T.FunnelConfig(vocab_size=500, d_model=64, n_head=4, d_head=16, d_inner=128, block_sizes=[1, 1])), text()),
 "squeezebert": lambda: (T.SqueezeBertModel(T.SqueezeBertConfig(vocab_size=500, embedding_size=64, **S)), text()),
 "gptj": lambda: (T.GPTJModel(T.GPTJConfig(vocab_size=500, n_embd=64, n_layer=2, n_head=4, rotary_dim=8)), text()),
 "codegen": lambda: (T.CodeGenModel(T.CodeGenConfig(vocab_size=500, n_embd=64, n_layer=2, n_head=4, rotary_dim=8)), text()),
 "falcon": lambda: (T.FalconModel(T.FalconConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)), text()),
 "stablelm": lambda: (T.StableLmModel(T.StableLmConfig(vocab_size=500, **S, num_key_value_heads=2)), text()),
 "qwen3": lambda: (T.Qwen3Model(T.Qwen3Config(vocab_size=500, **S, num_key_value_heads=2, head_dim=16)), text()),
 "gemma2": lambda: (T.Gemma2Model(T.Gemma2Config(vocab_size=500, **S, num_key_value_heads=2, head_dim=16)), text()),
 "mixtral": lambda: (T.MixtralModel(T.MixtralConfig(vocab_size=500, **S, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)), text()),
 "mbart": lambda: (T.MBartModel(T.MBartConfig(vocab_size=500, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128)), {**text(), "decoder_input_ids": torch.randint(5, 500, (2, 4))}),
 "pegasus": lambda: (T.PegasusModel(T.PegasusConfig(vocab_size=500, d_model=64, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128)), {**text(), "decoder_input_ids": torch.randint(5, 500, (2, 4))}),
 "beit": lambda: (T.BeitModel(T.BeitConfig(image_size=32, patch_size=8, **S)), img()),
 "convnextv2": lambda: (T.ConvNextV2Model(T.ConvNextV2Config(num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_channels=3)), img()),
 "efficientnet": lambda: (T.EfficientNetModel(T.EfficientNetConfig(image_size=32, width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320)), img()),
 "regnet": lambda: (T.RegNetModel(T.RegNetConfig(hidden_sizes=[16, 32], depths=[1, 1], embedding_size=16, groups_width=8)), img()),
 "mobilevit": lambda: (T.MobileViTModel(T.MobileViTConfig(image_size=32, patch_size=2, hidden_sizes=[16, 24, 32], neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 48])), img()),
 "levit": lambda: (T.LevitModel(T.LevitConfig(image_size=32, hidden_sizes=[32, 48, 64], num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8])), img()),
 "poolformer": lambda: (T.PoolFormerModel(T.PoolFormerConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1])), img()),
 "hubert": lambda: (T.HubertModel(T.HubertConfig(**S, conv_dim=(32, 32), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)), {"input_values": torch.randn(2, 1600)}),
 "clip-text": lambda: (T.CLIPTextModel(T.CLIPTextConfig(vocab_size=500, **S)), text()),
 "mamba": lambda: (T.MambaModel(T.MambaConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, state_size=8)), {"input_ids": text()["input_ids"]}),
}


def main() -> None:
    names = sys.argv[1:] or list(CASES)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="fx2nnef-unseen-") as tmp:
        for name in names:
            try:
                torch.manual_seed(0)
                model, inputs = CASES[name]()
                report = fx2nnef.export_model_to_nnef(model.eval(), inputs, f"{tmp}/{name}.nnef.tgz",
                                                      inference_target=TractNNEF(check_io=True),
                                                      output_names=["output"])
                worst = max((o.max_abs for o in report.check), default=0)
                print(f"OK   {name:14s} max abs error {worst:.2e}", flush=True)
            except Exception as e:  # a failure is a result: print it and go on
                failed += 1
                print(f"FAIL {name:14s} {type(e).__name__}: {str(e).splitlines()[0][:300]}", flush=True)
    print(f"{len(names) - failed}/{len(names)} exported and matched PyTorch")


if __name__ == "__main__":
    main()
