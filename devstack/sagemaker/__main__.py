"""Run the service: ``python -m devstack.sagemaker --host 127.0.0.1 --port P --state-dir DIR ...``."""

from __future__ import annotations

import argparse
import logging
import sys

from devstack.processes import server_parser, stop_signalled
from devstack.sagemaker.service import SageMakerService


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = server_parser("python -m devstack.sagemaker", "Local SageMaker-compatible service.")
    parser.add_argument("--state-dir", required=True, help="directory for records, job sandboxes and logs")
    parser.add_argument("--aws-endpoint-url", required=True, help="the local AWS endpoint (S3, CloudWatch Logs) to use")
    parser.add_argument("--region", default="us-east-1", help="AWS region (default us-east-1)")
    parser.add_argument(
        "--stop-grace-seconds",
        type=float,
        default=120.0,
        help="seconds between the stop signal and SIGKILL when a job is stopped (SageMaker: 120)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the service and serve until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    service = SageMakerService(
        args.state_dir, args.aws_endpoint_url, args.region, stop_grace_seconds=args.stop_grace_seconds
    )
    host, port = service.start(args.host, args.port)
    logging.getLogger("devstack.sagemaker").info("Ready on http://%s:%d", host, port)
    stop_signalled().wait()
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
