"""docs/llm.md's tract-side generation loop runs as written on an export and generates transformers' tokens."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from fx2nnef.llm import export_llm

from .models import causal_lm

DOC = Path(__file__).resolve().parents[2] / "docs" / "llm.md"


def test_the_documented_generation_loop(tmp_path, monkeypatch, capsys):
    loop = re.search(r"## Generating in tract.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    model = causal_lm(num_key_value_heads=2)
    export_llm(model, tmp_path / "llama-export", verify=False)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(loop, str(DOC), "exec"), scope)
    prompt = torch.tensor([[1, 15, 42, 7]])
    assert scope["ids"].dtype == np.int64 and len(scope["tokens"]) == 16
    with torch.no_grad():
        expected = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=16,
                                  do_sample=False, eos_token_id=None, pad_token_id=0)
    assert scope["tokens"] == expected[0, 4:].tolist()
