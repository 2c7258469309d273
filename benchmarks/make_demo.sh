#!/usr/bin/env bash
# Reproduces the bundled demo checkpoint (vccv_gpu/assets/demo), the default of
# `python -m vccv_gpu.caption`: a small model (tiny backbones, 8 frames of 112 px, LSTM 256) trained
# on the CPU, in well under an hour, on the generated motion-captioning set — not on real video.
#   bash benchmarks/make_demo.sh [WORKDIR]      (default build/demo; the checkpoint is copied at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-build/demo}
APPEARANCE="ball square triangle red green blue yellow white rocket coffee cat astronaut"
MOTION="moves stays still appears stops slowly quickly left right up down"

[ -f "$WORK/data/captions.csv" ] || python -m vccv_gpu.data.synthetic "$WORK/data" --videos 300 --seed 0
# Backbones: CNN_I as an object/colour/photo classifier (ImageNet's role), CNN_r as a motion
# classifier on residual frames (the role of the paper's HMDB-51 ResNet-18); see vccv_gpu.pretrain.
[ -f "$WORK/backbones.safetensors" ] || python -m vccv_gpu.pretrain --data "$WORK/data/captions.csv" \
  --out "$WORK/backbones.safetensors" --size 112 --segments 8 --epochs 30 --batch 8 --lr 2e-3 --seed 0 \
  --iframe-words "$APPEARANCE" --residual-words "$MOTION"
python -m vccv_gpu.extract --data "$WORK/data/captions.csv" --backbones "$WORK/backbones.safetensors" \
  --out "$WORK/features" --no-progress
python -m vccv_gpu.train --data "$WORK/data/captions.csv" --features "$WORK/features" --out "$WORK/run" \
  --variant rae --embed 128 --hidden 256 --gate-dim 128 --epochs 30 --lr 1e-3 --seed 0 --workers 0 \
  --val-every 3 --no-progress
python -m vccv_gpu.evaluate "$WORK/run" --split test --workers 0
rm -rf vccv_gpu/assets/demo
mkdir -p vccv_gpu/assets/demo
cp "$WORK"/run/best/{config.json,model.safetensors,vocab.json,backbones.safetensors} vccv_gpu/assets/demo/
du -sh vccv_gpu/assets/demo
