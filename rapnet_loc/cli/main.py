"""``rapnet-loc`` entry point: dispatches to the subcommand modules listed in ``SUBCOMMANDS``.

Command ``build-map`` lives in module ``rapnet_loc.cli.build_map`` (hyphens become underscores). Errors the user
can fix (``RapnetLocError``) and operating-system errors (a full disk) print one line and exit with 2, Ctrl-C with
130; ``-v`` shows their tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from rapnet_loc import __version__
from rapnet_loc.errors import RapnetLocError

SUBCOMMANDS = ('synth', 'replay', 'build-map', 'localize', 'retrieve', 'evaluate', 'demo', 'export-onnx',
               'train-rapnet', 'train-netvlad', 'train-vsnet')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='rapnet-loc', description='rapnet_loc visual localization suite: synthetic OpenLORIS-style data, '
                                       'offline replay of bags and frame folders, official OpenLORIS evaluation.')
    parser.add_argument('--version', action='version', version=f'rapnet-loc {__version__}')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"rapnet_loc.cli.{name.replace('-', '_')}")
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(levelname)s %(name)s: %(message)s')
    try:
        return int(args._run(args) or 0)
    except RapnetLocError as exc:
        if args.verbose:
            raise
        print(f'rapnet-loc {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:      # a disk that fills up or a file that vanishes mid-run (outputs are checked first)
        if args.verbose:
            raise
        print(f'rapnet-loc {args.command}: error: {exc} (run again with -v for the traceback)', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'rapnet-loc {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
