#!/usr/bin/env bash
# One-shot GPU check for a session with a CUDA machine (written for an H200; no GPU was available when it
# was written, so it has not run yet). From the repository root:
#     OUT=/some/dir bash benchmarks/gpu_check.sh
# Runs the Triton tests compiled for real (not interpreted) and the layer tests on CUDA (the CPU layer against
# the CUDA one), the kernel benchmark, the quick scaling benchmark and the speed benchmark (layer, training
# steps of the bundled recipe and of sc10.yaml, training.evaluate) on CUDA, and leaves the logs, JSON and PNG
# in $OUT. About 6-9 minutes.
set -uo pipefail
OUT=${OUT:?set OUT to a folder for the results}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
unset TRITON_INTERPRET
status=0
timeout 240 "$PYTHON" -m pytest -q tests/test_triton.py tests/test_cauchy.py tests/test_cauchy_pairs.py \
    tests/test_vandermonde.py tests/test_fft.py tests/test_layer.py > "$OUT/pytest.txt" 2>&1 || status=1
timeout 240 "$PYTHON" -m benchmarks.kernel --device cuda > "$OUT/kernel.txt" 2>&1 || status=1
timeout 240 "$PYTHON" -m benchmarks.scaling --device cuda --quick > "$OUT/scaling.txt" 2>&1 || status=1
timeout 300 "$PYTHON" -m benchmarks.speed --device cuda --only layer train evaluate > "$OUT/speed.txt" 2>&1 || status=1
cp benchmarks/results/*.json benchmarks/results/*.png "$OUT/" 2>/dev/null
tail -n 3 "$OUT/pytest.txt" "$OUT/kernel.txt" "$OUT/scaling.txt"
tail -n 12 "$OUT/speed.txt"
exit $status
