"""``make bench``: run every ``benchmarks/bench_*.py`` in turn and print what each measures.

Each script prints its own results with the machine and command; copy them into BENCHMARKS.md.
"""
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    print(f'# {date.today()} on {platform.node()} ({platform.processor() or platform.machine()}, '
          f'{len(__import__("os").sched_getaffinity(0))} cores), Python {platform.python_version()}')
    failed = []
    for script in sorted(HERE.glob('bench_*.py')):
        print(f'\n## {script.name}', flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode:
            failed.append(script.name)
    if failed:
        print(f'\nfailed: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
