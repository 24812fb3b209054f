#!/usr/bin/env bash
# Multi-core scaling: build neuropil in place and print bench/compare.py's
# tables at 1, 4, 8 and 16 threads (neuropil, NumPy and PyTorch measured in
# the same run). For a many-core machine with numpy, scikit-build-core,
# pybind11 and cmake installed; torch and threadpoolctl are used if present.
#   THREADS=1,4,8,16 FAMILIES="gemm mlp conv rnn" QUICK=1 bash bench/scaling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-1,4,8,16}
python3 -m pip install -q --no-build-isolation --no-deps .
python3 -c "import neuropil; neuropil.show_config()"
nproc
for fam in ${FAMILIES:-gemm mlp conv rnn}; do
  python3 bench/compare.py "$fam" --threads "$threads" --repeats 5 ${QUICK:+--quick}
done
