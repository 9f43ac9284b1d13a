"""``python -m devstack up|down|status|seed|env``: run the local AWS + Snowflake stand-in."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from devstack.snowflake import seed as seed_module
from devstack.stack import Stack, StackError, render_env_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Local stand-in for AWS (moto + SageMaker service) and Snowflake (fakesnow).",
    )
    parser.add_argument(
        "--state-dir",
        help="state directory (default: $DEVSTACK_STATE_DIR, else .devstack in the repository root)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the stack in the background, wait until healthy, seed, write env")
    up.add_argument("--no-sagemaker", action="store_true", help="do not start the SageMaker service")
    up.add_argument("--bucket", action="append", default=[], help="S3 bucket to create (repeatable)")
    up.add_argument("--no-seed", action="store_true", help="do not seed Snowflake")
    up.add_argument("--no-persist", action="store_true", help="do not keep moto state across restarts")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds each service may take to start")
    seed_module.add_arguments(up)

    sub.add_parser("down", help="stop every service of the stack")
    status = sub.add_parser("status", help="show what runs where (exit code 1 when not all healthy)")
    status.add_argument("--json", action="store_true", help="print JSON")

    seed = sub.add_parser("seed", help="(re)seed FRAUD_DB.RAW.CARD_TRANSACTIONS in the running stack")
    seed_module.add_arguments(seed)

    sub.add_parser("env", help='print the shell exports of the running stack (eval "$(python -m devstack env)")')
    sub.add_parser(
        "images",
        help="build every image environment (catalogue and include/images) into the cache, ahead of the jobs",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI.

    :param argv: arguments (default ``sys.argv[1:]``).
    :return: the exit code.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in ("snowflake.connector", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return _run(args)
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "up":
        stack = Stack(
            args.state_dir,
            sagemaker=not args.no_sagemaker,
            buckets=args.bucket,
            seed=None if args.no_seed else seed_module.params_from_args(args),
            persist=not args.no_persist,
            startup_timeout=args.timeout,
        )
        info = stack.up()
        for name, svc in info.services.items():
            print(f"{name:10s} {svc.url:28s} pid {svc.pid:<8d} log {svc.log}")
        print(f'env file:  {stack.env_file}   (source it, or: eval "$(python -m devstack env)")')
        return 0
    if args.command == "images":
        return _build_images()
    stack = Stack(args.state_dir)
    if args.command == "down":
        stopped = stack.down()
        print(f"stopped: {', '.join(stopped)}" if stopped else "devstack was not running")
        return 0
    if args.command == "status":
        status = stack.status()
        if args.json:
            print(json.dumps(status, indent=2, sort_keys=True))
        elif not status:
            print(f"devstack is not running (state dir {stack.state_dir})")
        else:
            for name, st in status.items():
                state = "healthy" if st["healthy"] else ("running, not healthy" if st["running"] else "stopped")
                print(f"{name:10s} {st['url']:28s} pid {st['pid']:<8d} {state}")
            if stack.seed_file.exists():
                seeded = json.loads(stack.seed_file.read_text())
                print(f"seeded:    {seeded['rows']} rows, {seeded['first_day']}..{seeded['last_day']}")
        return 0 if status and all(st["healthy"] for st in status.values()) else 1
    if args.command == "seed":
        result = stack.seed(seed_module.params_from_args(args))
        print(
            f"seeded {result.rows} rows ({result.fraud_rows} fraud) for {result.first_day}..{result.last_day} "
            f"and {result.label_rows} late labels in {result.seconds:.1f}s"
            + (f"; planted bad rows: {result.corrupted}" if result.corrupted else "")
        )
        return 0
    if args.command == "env":
        sys.stdout.write(render_env_file(stack.info().env()))
        return 0
    raise AssertionError(args.command)


def _build_images() -> int:
    import time

    from devstack.sagemaker.catalogue import build_every_environment
    from devstack.sagemaker.environments import EnvironmentBuildError, EnvironmentCache

    cache = EnvironmentCache()
    started = time.perf_counter()
    try:
        built = build_every_environment(cache, progress=lambda line: print(f"  {line}", flush=True))
    except EnvironmentBuildError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    print(f"images: {len(built)} environments ready in {cache.root} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
