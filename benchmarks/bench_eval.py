"""Evaluator speed and fidelity: every published OpenLORIS result in ../shared/data against the official numbers.

Prints the number of files, the worst relative difference to ``official-metrics-dev.json`` and the time taken.
"""
import json
import time
from pathlib import Path

from rapnet_loc.eval.openloris import evaluate_file

ROOT = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'openloris'


def main() -> None:
    if not ROOT.is_dir():
        print(f'skipped: {ROOT} not found')
        return
    official = json.loads((ROOT / 'official-metrics-dev.json').read_text())
    worst, poses = 0.0, 0
    start = time.perf_counter()
    for rel, exp in official.items():
        got = evaluate_file(ROOT / 'results-dev' / rel, ROOT).summary()
        for seq, metrics in exp['sequences'].items():
            poses += metrics['poses']
            for key, value in metrics.items():
                mine = got['sequences'][seq][key]
                if value:
                    worst = max(worst, abs(mine - value) / abs(value))
    elapsed = time.perf_counter() - start
    print(f'{len(official)} result files, {poses} poses: worst relative difference {worst:.2e}, '
          f'{elapsed:.1f} s total ({1000 * elapsed / len(official):.0f} ms per file)')


if __name__ == '__main__':
    main()
