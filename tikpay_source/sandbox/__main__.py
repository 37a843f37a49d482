"""``python -m tikpay_source.sandbox`` (or ``tikpay-sandbox``): run the sandbox in the foreground.

Prints where it listens, the public demo credentials and the environment lines that
point the connector at it, then serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from tikpay_source.sandbox.core import Sandbox
from tikpay_source.sandbox.settings import SandboxSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tikpay_source.sandbox", description="Run the local Tikpay Data API sandbox."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="API and token server address (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="API and token server port (0 = any free port)"
    )
    parser.add_argument("--download-host", default="127.0.0.2", help="download server address")
    parser.add_argument(
        "--download-port", type=int, default=0, help="download server port (0 = any free port)"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    parser.add_argument("--timezone", default="Australia/Sydney", help="operator timezone (IANA name)")
    parser.add_argument("--rows-per-hour", type=int, default=None, help="rows per hour for every report type")
    parser.add_argument(
        "--complete-after-list-calls", type=int, default=0, help="list calls a job stays IN_PROGRESS"
    )
    parser.add_argument(
        "--complete-after-seconds",
        type=float,
        default=2.0,
        help="sandbox-clock seconds a job takes before it is done (default 2)",
    )
    parser.add_argument("--retry-after-format", choices=("seconds", "http-date"), default="seconds")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def _banner(sb: Sandbox) -> str:
    s = sb.settings
    return "\n".join(
        [
            "Tikpay Data API sandbox is running (Ctrl-C to stop)",
            f"  base URL:      {sb.base_url}",
            f"  token URL:     {sb.token_url}",
            f"  downloads:     {sb.download_base_url}",
            f"  client id:     {s.client_id}",
            f"  client secret: {s.client_secret}",
            f"  API key:       {s.api_keys[0]}",
            f"  timezone:      {s.timezone}",
            "",
            "Point the connector at it with:",
            f"export SOURCES__TIKPAY__BASE_URL={sb.base_url}",
            f"export SOURCES__TIKPAY__TOKEN_URL={sb.token_url}",
            f"export SOURCES__TIKPAY__CLIENT_ID={s.client_id}",
            f"export SOURCES__TIKPAY__CLIENT_SECRET={s.client_secret}",
            f"export SOURCES__TIKPAY__API_KEY={s.api_keys[0]}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until interrupted; return the process exit status."""
    args = _parser().parse_args(argv)
    settings = SandboxSettings(
        host=args.host,
        port=args.port,
        download_host=args.download_host,
        download_port=args.download_port,
        seed=args.seed,
        timezone=args.timezone,
        rows_per_hour=args.rows_per_hour,
        complete_after_list_calls=args.complete_after_list_calls,
        complete_after_seconds=args.complete_after_seconds,
        retry_after_format=args.retry_after_format,
        verbose=args.verbose,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Sandbox(settings) as sb:
            print(_banner(sb), flush=True)
            while not stop.wait(0.5):
                pass
    except OSError as exc:
        print(f"tikpay-sandbox: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Tikpay Data API sandbox stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
