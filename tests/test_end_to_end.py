"""The whole researcher's path on generated clips, through the command lines: synthetic set ->
pretrain -> extract -> train -> evaluate -> caption with the trained run. Tiny sizes; this checks
that the tools fit together (files, formats, paths), not what the model learns."""

from __future__ import annotations

import json

import pytest

from vccv_gpu import caption, evaluate, extract, pretrain, train
from vccv_gpu.data.synthetic import generate

pytest.importorskip("pycocoevalcap")


def test_generated_clips_to_captions(tmp_path, capsys) -> None:
    data = generate(tmp_path / "data", videos=9, seed=2, size=(64, 48), frames=24)
    backbones = tmp_path / "backbones.safetensors"
    assert pretrain.main(["--data", str(data), "--out", str(backbones), "--size", "32", "--segments", "3",
                          "--epochs", "1", "--batch", "4", "--workers", "1", "--device", "cpu"]) == 0
    features = tmp_path / "features"
    assert extract.main(["--data", str(data), "--backbones", str(backbones), "--out", str(features),
                         "--batch", "4", "--workers", "1", "--device", "cpu", "--no-progress"]) == 0
    run = tmp_path / "run"
    tiny = ["--embed", "16", "--hidden", "32", "--gate-dim", "16", "--max-len", "8", "--workers", "0",
            "--device", "cpu", "--no-meteor", "--no-progress", "--min-count", "1"]
    assert train.main(["--data", str(data), "--features", str(features), "--out", str(run), "--epochs", "2",
                       "--lr", "1e-3", *tiny]) == 0
    assert evaluate.main([str(run), "--split", "test", "--workers", "0", "--device", "cpu", "--no-meteor",
                          "--no-progress"]) == 0
    assert "RAE(full)" in capsys.readouterr().out
    predictions = json.loads((run / "predictions-test.json").read_text())
    assert predictions and all(isinstance(p["caption"], str) for p in predictions)

    out = tmp_path / "captions.jsonl"
    assert caption.main([str(tmp_path / "data" / "videos"), "--checkpoint", str(run), "--out", str(out),
                         "--device", "cpu", "--beam", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 9 and {"path", "caption", "score", "seconds"} <= set(records[0])
