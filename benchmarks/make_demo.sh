#!/usr/bin/env bash
# Reproduces the bundled demo checkpoint (vccv_gpu/assets/demo), the default of
# `python -m vccv_gpu.caption`: a small model (tiny backbones, 8 frames of 112 px, LSTM 256) trained
# on the CPU, in well under an hour, on the generated motion-captioning set with 2 still
# distractors per clip (the ablation's default set: only motion tells which shape the caption
# names) — not on real video. The recipe is benchmarks/ablation.py's full RAE (issue 24): CNN_I
# pretrained on every object the frames show (--iframe-scene) and on what is at each cell of its
# grid (--iframe-cells), CNN_r on the motion words and on where the named shape is
# (--residual-where), the RAE at lr 3e-3 for 85 epochs, on 600 clips (ablation.py's default
# --scale 2; at 300 clips the moving shape's shape was named in 79 % of the test clips, at 600 in 90 %).
# The bundled checkpoint is replaced only with --replace-bundled (see usage below).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bash benchmarks/make_demo.sh [--replace-bundled] [WORKDIR]

Trains the demo captioning model on the CPU (about 25 minutes on 2 cores): generates 600 clips
of the synthetic motion-captioning set (2 still distractors per clip), pretrains the tiny
backbones, extracts features, trains the RAE model and evaluates it on the test split. Steps
whose output exists in WORKDIR (the data set, the backbones) are not redone.

  WORKDIR            where everything is written (default: build/demo in the repository); the
                     finished checkpoint ends up in WORKDIR/checkpoint
  --replace-bundled  also replace the bundled demo checkpoint, vccv_gpu/assets/demo, with the
                     new one (without this flag the bundled checkpoint is never touched)
  -h, --help         print this help and exit
EOF
}

REPLACE_BUNDLED=0
WORK=
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --replace-bundled) REPLACE_BUNDLED=1 ;;
    -*) echo "make_demo.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *)
      if [ -n "$WORK" ]; then
        echo "make_demo.sh: one WORKDIR only (got $WORK and $1)" >&2; usage >&2; exit 2
      fi
      WORK=$1 ;;
  esac
  shift
done
# A WORKDIR given is relative to where the script is run from; the default is in the repository.
if [ -n "$WORK" ] && [ "${WORK#/}" = "$WORK" ]; then
  WORK=$PWD/$WORK
fi
cd "$(dirname "$0")/.."
WORK=${WORK:-build/demo}
APPEARANCE="ball square triangle red green blue yellow white rocket coffee cat astronaut"
# (no "stays still": with distractors no clip is still, as nothing could tell which shape is named)
MOTION="moves appears stops slowly quickly left right up down"

[ -f "$WORK/data/captions.csv" ] || python -m vccv_gpu.data.synthetic "$WORK/data" --videos 600 --seed 0 \
  --distractors 2
# A WORKDIR from before the distractors (issue 24) holds another set: say so rather than reuse it.
python - "$WORK/data/positions.json" <<'PY'
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
if not path.is_file() or any(len(v["objects"]) != 3 for v in json.loads(path.read_text()).values()):
    sys.exit(f"make_demo.sh: {path.parent} is not the demo's set (2 distractors per clip); "
             "remove it or use another WORKDIR")
PY
# Backbones: CNN_I as an object/colour/photo classifier (ImageNet's role) taught every object the
# frames show, named or not (--iframe-scene: the set's positions.json), and the colour and shape at
# each cell of its grid (--iframe-cells: so that its features where the named shape is tell it),
# CNN_r as a motion classifier on residual frames (the role of the paper's HMDB-51 ResNet-18) whose
# channel-mean map peaks where the named shape is (--residual-where: what steers the attention);
# see vccv_gpu.pretrain. The arguments are kept beside the weights, so that backbones left in
# WORKDIR by another recipe are not reused.
PRETRAIN_ARGS=(--data "$WORK/data/captions.csv" --out "$WORK/backbones.safetensors" --size 112 --segments 8
  --epochs 30 --batch 8 --lr 2e-3 --seed 0 --iframe-words "$APPEARANCE" --residual-words "$MOTION"
  --iframe-scene "$WORK/data/positions.json" --residual-where "$WORK/data/positions.json"
  --iframe-cells "$WORK/data/positions.json")
if [ -f "$WORK/backbones.safetensors" ] && [ "$(cat "$WORK/backbones.args" 2>/dev/null)" != "${PRETRAIN_ARGS[*]}" ]; then
  echo "make_demo.sh: $WORK/backbones.safetensors was pretrained with other arguments; remove it" >&2
  exit 1
fi
if [ ! -f "$WORK/backbones.safetensors" ]; then
  python -m vccv_gpu.pretrain "${PRETRAIN_ARGS[@]}"
  echo "${PRETRAIN_ARGS[*]}" > "$WORK/backbones.args"
fi
python -m vccv_gpu.extract --data "$WORK/data/captions.csv" --backbones "$WORK/backbones.safetensors" \
  --out "$WORK/features" --no-progress
python -m vccv_gpu.train --data "$WORK/data/captions.csv" --features "$WORK/features" --out "$WORK/run" \
  --variant rae --embed 128 --hidden 256 --gate-dim 128 --epochs 85 --lr 3e-3 --seed 0 --workers 0 \
  --val-every 8 --no-progress
python -m vccv_gpu.evaluate "$WORK/run" --split test --workers 0
rm -rf "$WORK/checkpoint"
mkdir -p "$WORK/checkpoint"
cp "$WORK"/run/best/{config.json,model.safetensors,vocab.json,backbones.safetensors} "$WORK/checkpoint/"
du -sh "$WORK/checkpoint"
if [ "$REPLACE_BUNDLED" = 1 ]; then
  # Copied beside it first: the bundled checkpoint is only removed once its replacement is complete.
  rm -rf vccv_gpu/assets/demo.new
  cp -r "$WORK/checkpoint" vccv_gpu/assets/demo.new
  rm -rf vccv_gpu/assets/demo
  mv vccv_gpu/assets/demo.new vccv_gpu/assets/demo
  echo "replaced the bundled checkpoint vccv_gpu/assets/demo"
else
  echo "the new checkpoint is $WORK/checkpoint; vccv_gpu/assets/demo is unchanged (--replace-bundled replaces it)"
fi
