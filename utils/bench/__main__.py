"""``python -m utils.bench train|edge|api|real|batch [options]``: run one benchmark (imported lazily)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from . import BENCHMARKS as _BENCHMARKS

# batch: plain vs Ray Data throughput of `count` (utils/bench/batch.py, issue 14)
BENCHMARKS = (*_BENCHMARKS, *(("batch",) if "batch" not in _BENCHMARKS else ()))

USAGE = f"usage: python -m utils.bench {{{','.join(BENCHMARKS)}}} [options]  (--help after a name)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in BENCHMARKS:
        print(
            f"error: unknown benchmark {name!r}; choose one of {list(BENCHMARKS)}", file=sys.stderr
        )
        return 2
    module = importlib.import_module(f"utils.bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
