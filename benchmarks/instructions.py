"""Instructions per call, counted by valgrind's callgrind: load + context against the floor.

Wall-clock ratios on a shared machine move by 0.1 or more within minutes (see
docs/performance.md); an instruction count does not: the same code, inputs and
interpreter give the same count whatever else the machine is doing. This script
counts the instructions of the rows ``run.py`` times for loading stores (``load-*``,
``context-*``) and of their floor, so a change to the load path shows in a figure
that holds still.

An instruction is not a unit of time: OpenSSL's arithmetic retires several per cycle,
the interpreter fewer, so the wall-clock ratio of a path that adds Python to OpenSSL's
work is higher than its instruction ratio. Read both.

    python benchmarks/instructions.py               # every case, rsa2048 and ec
    python benchmarks/instructions.py --only jks --key-type ec

How: each case runs in a fresh interpreter under ``valgrind --tool=callgrind`` twice,
``N`` and ``3N`` calls after the same warm-up, with ``PYTHONHASHSEED=0``; the difference
divided by ``2N`` is one call's instructions, start-up and imports cancelled out. The
stores are written once (by keytool, as ``run.py`` writes them) before any count.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = ("floor", "jks", "p12jdk25", "pem", "context")
WARMUP = 5
_COLLECTED = re.compile(rb"Collected : (\d+)")


def _child(case: str, calls: int, directory: Path, key_type: str) -> None:
    """Run ``case`` ``WARMUP + calls`` times on the stores in ``directory``."""
    import ssl  # noqa: PLC0415 - the child's imports are part of what cancels out

    import mtls  # noqa: PLC0415

    stores = directory / "stores"
    password = "changeit"
    ca_pem, pem = stores / f"{key_type}-ca.pem", stores / f"{key_type}.pem"

    def floor() -> object:
        ctx = ssl.create_default_context(cafile=ca_pem)
        ctx.load_cert_chain(pem)
        return ctx

    def load(name: str) -> object:
        keystore, trust = stores / f"{key_type}.{name}", stores / f"{key_type}-ca.{name}"
        secret = None if name == "pem" else password
        return mtls.client_context(
            mtls.Keystore.load(keystore, secret), mtls.Truststore.load(trust, secret)
        )

    if case == "floor":
        run = floor
    elif case == "context":
        loaded = mtls.Keystore.load(pem, None), mtls.Truststore.load(ca_pem)
        run = lambda: mtls.client_context(*loaded)  # noqa: E731
    else:
        run = lambda: load(case)  # noqa: E731
    # Each call cold, as run.py's rows: its cold() empties mtls's caches of
    # per-certificate work before every call, on both sides (a few thousand
    # instructions). (This script's directory is on the child's path.)
    from run import cold  # noqa: PLC0415

    for _ in range(WARMUP + calls):
        cold()
        run()


def _count(case: str, calls: int, directory: Path, key_type: str) -> int:
    """Instructions of a fresh interpreter running ``case`` ``calls`` times."""
    out = directory / f"callgrind.{case}.{calls}"
    command = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, __file__, "--child", case, str(calls), str(directory), key_type,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(
            f"{case}: valgrind failed:\n{done.stderr.decode(errors='replace')[-2000:]}"
        )
    out.unlink(missing_ok=True)
    return int(found.group(1))


def per_call(case: str, calls: int, directory: Path, key_type: str) -> float:
    """One call's instructions: (count of 3N calls - count of N calls) / 2N."""
    return (
        _count(case, 3 * calls, directory, key_type) - _count(case, calls, directory, key_type)
    ) / (2 * calls)


def main(argv: list[str] | None = None) -> int:
    """Count, print a table of instructions per call and ratios to the floor."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=CASES[1:], help="cases to count")
    parser.add_argument("--key-type", action="append", choices=("rsa2048", "ec"))
    parser.add_argument("--calls", type=int, default=10, help="N (default 10)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        case, calls, directory, key_type = args.child
        _child(case, int(calls), Path(directory), key_type)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).parent))
    import run as timed  # noqa: PLC0415 - writes the stores as the timed rows have them

    print(f"instructions per call (callgrind), N={args.calls}, Python {sys.version.split()[0]}")
    print(f"{'case':24} {'ours':>12} {'floor':>12} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for key_type in args.key_type or ("rsa2048", "ec"):
            timed._store_files(directory, key_type)
            floor = per_call("floor", args.calls, directory, key_type)
            for case in args.only or CASES[1:]:
                ours = per_call(case, args.calls, directory, key_type)
                name = f"{'context' if case == 'context' else 'load-' + case}-{key_type}"
                print(f"{name:24} {ours:12,.0f} {floor:12,.0f} {ours / floor:6.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
