"""Dataset readers (tiny files in the official formats) and the caption vocabulary."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from vccv_gpu.data import (
    MSRVTT_OFFICIAL_SPLIT,
    DataFormatError,
    Sample,
    Vocabulary,
    load_dataset,
    pad_batch,
    read_charades,
    read_msrvtt,
    split_counts,
    tokenize,
)
from vccv_gpu.model.tokens import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

# ------------------------------------------------------------------------------------------- MSR-VTT


def _msrvtt_video(n: int, split: str) -> dict:
    return {"category": n % 20, "url": f"https://www.youtube.com/watch?v=x{n}", "video_id": f"video{n}",
            "start time": 1.5, "end time": 11.5, "split": split, "id": n}


def _write_msrvtt(path: Path, videos: list[dict], sentences: list[dict]) -> Path:
    info = {"contributor": "Microsoft MSM group", "data_created": "2016-04-14 14:30:20", "version": "1.0",
            "description": "This is 1.0 version of the 2016 MSR-VTT dataset.", "year": "2016"}
    path.write_text(json.dumps({"info": info, "videos": videos, "sentences": sentences}), encoding="utf-8")
    return path


@pytest.fixture()
def msrvtt_files(tmp_path: Path) -> tuple[Path, Path]:
    # Same layout as the official files: train/validate in one file (video0.. first), test in the other,
    # split sizes in the official 6513 : 497 : 2990 order, scaled down to 6 : 2 : 3.
    train_val = [_msrvtt_video(n, "train") for n in range(6)] + [_msrvtt_video(n, "validate") for n in (6, 7)]
    test = [_msrvtt_video(n, "test") for n in (8, 9, 10)]
    sentences = []
    for sen_id, n in enumerate(n for n in range(8) for _ in range(2)):
        sentences.append({"caption": f"a man is talking number {sen_id}", "video_id": f"video{n}", "sen_id": sen_id})
    sentences.reverse()  # readers must order captions by sen_id, not file order
    test_sentences = [{"caption": f"a cat plays {n}", "video_id": f"video{n}", "sen_id": 100 + n} for n in (8, 9, 10)]
    return (_write_msrvtt(tmp_path / "train_val_videodatainfo.json", train_val, sentences),
            _write_msrvtt(tmp_path / "test_videodatainfo.json", test, test_sentences))


def test_msrvtt_reader_and_splits(msrvtt_files: tuple[Path, Path], tmp_path: Path) -> None:
    train_val, test = msrvtt_files
    videos = tmp_path / "videos"
    samples = load_dataset("msrvtt", [train_val, test], videos)
    assert split_counts(samples) == {"train": 6, "val": 2, "test": 3}
    first = samples[0]
    assert first == Sample("video0", videos / "video0.mp4", ["a man is talking number 0", "a man is talking number 1"],
                           "train")
    assert [s.video_id for s in load_dataset("msrvtt", [train_val, test], videos, split="validate")] == ["video6",
                                                                                                          "video7"]
    assert [s.video_id for s in load_dataset("msrvtt", [train_val, test], videos, split="test")] == [
        "video8", "video9", "video10"]
    assert read_msrvtt(train_val)[0].video_path is None
    assert MSRVTT_OFFICIAL_SPLIT == {"train": 6513, "val": 497, "test": 2990}


@pytest.mark.parametrize("payload, message", [
    ("{\"videos\": [", "line 1 column"),
    ("[]", "top level"),
    (json.dumps({"videos": []}), "'sentences'"),
    (json.dumps({"videos": [{"video_id": "video0", "split": "dev"}], "sentences": []}), "videos[0].split"),
    (json.dumps({"videos": [{"split": "train"}], "sentences": []}), "videos[0].video_id"),
    (json.dumps({"videos": [{"video_id": "video0", "split": "train"}] * 2, "sentences": []}), "duplicate"),
    (json.dumps({"videos": [{"video_id": "video0", "split": "train"}],
                 "sentences": [{"caption": "x", "video_id": "video9", "sen_id": 0}]}), "sentences[0].video_id"),
    (json.dumps({"videos": [{"video_id": "video0", "split": "train"}],
                 "sentences": [{"caption": "", "video_id": "video0", "sen_id": 0}]}), "sentences[0].caption"),
])
def test_msrvtt_malformed(tmp_path: Path, payload: str, message: str) -> None:
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(payload, encoding="utf-8")
    with pytest.raises(DataFormatError, match=re.escape(message)) as info:
        read_msrvtt(path)
    assert str(path) in str(info.value)


def test_msrvtt_duplicate_across_files(msrvtt_files: tuple[Path, Path]) -> None:
    train_val, _ = msrvtt_files
    with pytest.raises(DataFormatError, match="also in"):
        load_dataset("msrvtt", [train_val, train_val])


# ------------------------------------------------------------------------------------------ Charades

CHARADES_HEADER = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
                   "actions", "length"]


def _charades_row(vid: str, descriptions: str) -> list[str]:
    return [vid, "HR43", "Kitchen", "6", "7", "Yes", "A person cooks, then eats.", "food;stove;dish", descriptions,
            "c106 0.00 12.40;c110 3.10 9.00", "30.25"]


def test_charades_reader(tmp_path: Path) -> None:
    train = tmp_path / "Charades_v1_train.csv"
    with train.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)  # quotes fields with commas, quotes and newlines, like the official file
        writer.writerow(CHARADES_HEADER)
        writer.writerow(_charades_row("46GP8", "A person cooks on a stove. Then they eat, \"happily\".;"
                                               "The person is cooking food.\nThey put it on a dish."))
        writer.writerow(_charades_row("N11GT", "Someone opens a fridge."))
        writer.writerow(_charades_row("0IH69", ""))
    test = tmp_path / "Charades_v1_test.csv"
    with test.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CHARADES_HEADER)
        writer.writerow(_charades_row("YSKX3", "A person sits."))
    samples = load_dataset("charades", [train, test], tmp_path / "Charades_v1_480")
    assert [(s.video_id, s.split) for s in samples] == [("46GP8", "train"), ("N11GT", "train"), ("0IH69", "train"),
                                                        ("YSKX3", "test")]
    # one caption per ';'-separated description, sentences of a description kept together
    assert samples[0].captions == ["A person cooks on a stove. Then they eat, \"happily\".",
                                   "The person is cooking food.\nThey put it on a dish."]
    assert samples[0].video_path == tmp_path / "Charades_v1_480" / "46GP8.mp4"
    assert samples[2].captions == []
    assert [s.video_id for s in load_dataset("charades", [train, test], split="test")] == ["YSKX3"]


def test_charades_malformed(tmp_path: Path) -> None:
    path = tmp_path / "Charades_v1_train.csv"
    path.write_text("id,subject,scene\n46GP8,HR43,Kitchen\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 1: header lacks column\(s\) quality"):
        read_charades(path)
    header = ",".join(CHARADES_HEADER)
    path.write_text(f"{header}\n46GP8,HR43,Kitchen,6,7,Yes,s,o,d,a,30\nN11GT,HR43,Kitchen\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 3: fewer fields"):
        read_charades(path)
    path.write_text(f"{header}\n\"46GP8\",HR43,Kitchen,6,7,Yes,\"two\nlines\",o,d,a,30\n,x,x,x,x,x,x,x,x,x,x\n",
                    encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 4: field 'id' is empty"):
        read_charades(path)
    other = tmp_path / "charades.csv"
    other.write_text(f"{header}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="split"):
        read_charades(other)
    assert read_charades(other, split="train") == []


# ---------------------------------------------------------------------------------------- own data


def test_own_csv(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir()
    absolute = tmp_path / "elsewhere" / "b.mp4"
    path = root / "captions.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "caption"])
        writer.writerow(["clips/a.mp4", "A dog runs, fast."])
        writer.writerow([str(absolute), "A bird sings."])
        writer.writerow(["clips/a.mp4", "The dog is running."])
    samples = load_dataset("csv", path)
    assert samples == [Sample("clips/a.mp4", root / "clips" / "a.mp4", ["A dog runs, fast.", "The dog is running."],
                              "all"),
                       Sample(str(absolute), absolute, ["A bird sings."], "all")]
    assert load_dataset("csv", path, video_dir=tmp_path / "v", split="train")[0].video_path == (
        tmp_path / "v" / "clips" / "a.mp4")
    assert load_dataset("csv", path, split="train")[0].split == "train"

    with_split = root / "split.csv"
    with_split.write_text("video,caption,split\na.mp4,one,train\nb.mp4,two,validate\n", encoding="utf-8")
    assert [(s.video_id, s.split) for s in load_dataset("csv", with_split, split="val")] == [("b.mp4", "val")]


@pytest.mark.parametrize("text, message", [
    ("clip,text\na.mp4,x\n", r"line 1: header lacks column\(s\) video, caption"),
    ("video,caption\na.mp4,x\nb.mp4,\n", "line 3: field 'caption' is empty"),
    ("video,caption\na.mp4,x,extra\n", "line 2: more fields"),
    ("video,caption,split\na.mp4,x,dev\n", "line 2: field 'split'"),
    ("video,caption,split\na.mp4,x,train\na.mp4,y,test\n", "line 3: video 'a.mp4' is in split"),
    ("", "empty file"),
])
def test_own_csv_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "captions.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset("csv", path)
    assert str(path) in str(info.value)


def test_own_jsonl(tmp_path: Path) -> None:
    absolute = tmp_path / "abs" / "c.mp4"
    path = tmp_path / "data" / "captions.jsonl"
    path.parent.mkdir()
    lines = [{"video": "a.mp4", "caption": "A man cooks."}, {"video": str(absolute), "caption": ["One.", "Two."]},
             {"video": "a.mp4", "caption": "He cooks pasta."}]
    path.write_text("\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n",
                    encoding="utf-8")
    samples = load_dataset("jsonl", path)
    assert samples == [Sample("a.mp4", path.parent / "a.mp4", ["A man cooks.", "He cooks pasta."], "all"),
                       Sample(str(absolute), absolute, ["One.", "Two."], "all")]


@pytest.mark.parametrize("text, message", [
    ('{"video": "a.mp4", "caption": "x"}\n{"video": "b.mp4"\n', "line 2: invalid JSON"),
    ('\n["a.mp4", "x"]\n', "line 2: expected a JSON object"),
    ('{"video": "", "caption": "x"}\n', "line 1: field 'video'"),
    ('{"video": "a.mp4", "caption": 3}\n', "line 1: field 'caption'"),
    ('{"video": "a.mp4", "caption": []}\n', "line 1: field 'caption'"),
])
def test_own_jsonl_malformed(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "captions.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError, match=message) as info:
        load_dataset("jsonl", path)
    assert str(path) in str(info.value)


def test_load_dataset_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("kinetics", tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="x.json"):
        load_dataset("msrvtt", tmp_path / "x.json")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("msrvtt", tmp_path / "x.json", split="dev")


# -------------------------------------------------------------------------------------- vocabulary


def test_tokenize() -> None:
    assert tokenize("A man's car\u2014it's RED!  'Quoted' 3-D don\u2019t") == [
        "a", "man's", "car", "it's", "red", "quoted", "3", "d", "don't"]
    assert tokenize("") == []
    assert tokenize("caf\u00e9 na\u00efve_x") == ["caf\u00e9", "na\u00efve", "x"]


def test_vocabulary_threshold_and_order() -> None:
    captions = ["a dog runs", "A dog jumps", "a dog sits", "the cat runs", "The cat runs!", "a bird"]
    vocab = Vocabulary.build(captions)  # counts: a 4, dog 3, runs 3, the 2, cat 2, jumps/sits/bird 1
    assert vocab.words == [*SPECIAL_TOKENS, "a", "dog", "runs"]
    assert (vocab.token_id("<pad>"), vocab.token_id("<bos>"), vocab.token_id("<eos>"), vocab.token_id("<unk>")) == (
        PAD, BOS, EOS, UNK)
    assert Vocabulary.build(list(reversed(captions))) == vocab  # order of the captions does not matter
    assert Vocabulary.build(captions, min_count=2).words[4:] == ["a", "dog", "runs", "cat", "the"]  # ties by word
    assert vocab.encode("A dog flies") == [BOS, 4, 5, UNK, EOS]


def test_encode_truncates_and_decode() -> None:
    vocab = Vocabulary.build(["one two three"] * 3)
    long = " ".join(["one", "two"] * 40)
    ids = vocab.encode(long)
    assert len(ids) == 50 + 2 and ids[0] == BOS and ids[-1] == EOS
    one, two = vocab.token_id("one"), vocab.token_id("two")
    assert vocab.encode(long, max_len=3) == [BOS, one, two, one, EOS]
    assert vocab.decode(vocab.encode("One, two: zebra three.")) == "one two three"
    assert vocab.decode(vocab.encode("one zebra"), keep_unk=True) == "one <unk>"
    assert vocab.decode([BOS, vocab.token_id("two"), EOS, vocab.token_id("one"), PAD]) == "two"
    assert vocab.decode(torch.tensor([vocab.token_id("three"), PAD, PAD])) == "three"
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([999])


def test_vocabulary_save_load(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["\u00e9t\u00e9 is here"] * 3 + ["is"], min_count=3)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.counts == {"is": 4, "\u00e9t\u00e9": 3, "here": 3}
    assert loaded.words == [*SPECIAL_TOKENS, "is", "here", "\u00e9t\u00e9"]
    assert Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    path.write_text(json.dumps({"format": "other"}), encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.json"):
        Vocabulary.load(path)
    with pytest.raises(ValueError, match="must start with"):
        Vocabulary(["a", "b"])


def test_pad_batch() -> None:
    batch = pad_batch([[BOS, 5, EOS], [BOS, EOS], [BOS, 4, 5, 6, EOS]])
    assert batch.dtype == torch.long and batch.shape == (3, 5)
    assert batch.tolist() == [[BOS, 5, EOS, PAD, PAD], [BOS, EOS, PAD, PAD, PAD], [BOS, 4, 5, 6, EOS]]
    assert pad_batch([torch.tensor([BOS, EOS]), [BOS]]).tolist() == [[BOS, EOS], [BOS, PAD]]
    with pytest.raises(ValueError):
        pad_batch([])
