"""A latency lookup table built on this device, and its accuracy on held-out archs measured on this device.

The protocol is :func:`nasframe.hardware.evaluate.evaluate_on_device`: every (edge, op) of the space measured in
its input shape plus the fixed part, an affine correction fitted on ``--fit`` measured archs, metrics (RMSE, MAPE,
share within +-10 %, Kendall tau) on ``--held-out`` other measured archs, predictions per second. Writes
``results/latency_predictor_<space>_<device>.{md,json}`` and the table ``results/latency_table_<space>_<device>.json``.

Run it on a quiet machine: latency measured while other work runs is not a measurement of the device.

    python scripts/latency_predictor_measured.py                                # NB201 C=16 N=5, batch 1, CPU
    python scripts/latency_predictor_measured.py --device cuda --batch-size 256
    python scripts/latency_predictor_measured.py --space-opt channels=8 --space-opt cells_per_stage=2 --out /tmp/lat
    (all options: --help; the same as `nasframe latency`)
"""

from __future__ import annotations

import sys

from nasframe.errors import NasframeError
from nasframe.hardware.cli import main

if __name__ == "__main__":
    try:
        main(sys.argv[1:], default_out="results", command="python scripts/latency_predictor_measured.py")
    except NasframeError as exc:
        sys.exit(f"latency_predictor_measured: error: {exc}")
