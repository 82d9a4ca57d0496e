"""`fx2nnef llm` takes the reference CLI's flags."""
from __future__ import annotations

from fx2nnef.cli import main

from llm.models import save_llama


def test_the_reference_flags(tmp_path, capsys):
    directory = save_llama(tmp_path / "model")
    assert main(["llm", "-d", str(directory), "-e", str(tmp_path / "out"), "-dt", "f16", "-c", "min_max_q4_0",
                 "--num-logits-to-keep", "1", "-dwtac"]) == 0
    out = capsys.readouterr().out
    assert "generation check: 32 tokens equal" in out and (tmp_path / "out" / "tokenizer").is_dir()
    assert main(["llm", "-d", str(directory), "-e", str(tmp_path / "out"), "-nv"]) == 1   # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["llm", "-d", str(directory), "-e", str(tmp_path / "out"), "-nv", "--overwrite",
                 "--num-logits-to-keep", "dynamic"]) == 0
    assert "skipped (--no-verify)" in capsys.readouterr().out
