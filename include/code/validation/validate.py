"""SageMaker Processing entrypoint: validate a Parquet dataset against a Great Expectations suite.

Container contract (SageMaker Processing)::

    python3 /opt/ml/processing/input/code/validate.py \
        --data-dir /opt/ml/processing/input/data \
        --suite /opt/ml/processing/input/suite/<suite>.json \
        --output-dir /opt/ml/processing/output/report \
        --batch-rows 100000 [--dataset-uri s3://...]

The data folder holds the extracted dataset: ``_manifest.json`` and its Parquet parts (without a manifest,
every ``*.parquet`` file directly in the folder, in name order). The output folder receives
``validation_result.json`` and ``validation_report.html``. A failed validation is a result, not an error:
the script exits 0 and the caller reads the verdict from the JSON. It exits non-zero only when it cannot
validate (unreadable suite or data), writing the reason to ``/opt/ml/output/failure`` for SageMaker's
``FailureReason``.

The validation core is the sibling module ``gx_validation.py``. When the image lacks great_expectations
and the environment sets ``VALIDATION_INSTALL_REQUIREMENTS=1``, the sibling ``requirements.txt`` is
installed with pip first (needs network access from the job).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAILURE_FILE = Path(os.environ.get("SM_FAILURE_FILE", "/opt/ml/output/failure"))


def _ensure_great_expectations() -> None:
    if importlib.util.find_spec("great_expectations") is not None:
        return
    requirements = HERE / "requirements.txt"
    if os.environ.get("VALIDATION_INSTALL_REQUIREMENTS") != "1" or not requirements.is_file():
        raise RuntimeError(
            "great_expectations is not installed in this image; use an image that has it, or set "
            "VALIDATION_INSTALL_REQUIREMENTS=1 to install include/code/validation/requirements.txt"
        )
    print(f"Installing {requirements}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True)


def dataset_files(data_dir: Path) -> tuple[list[Path], int | None]:
    """The dataset's part files in order, and its row count when a manifest says it."""
    manifest_path = data_dir / "_manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = [data_dir / part["name"] for part in manifest["parts"]]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"parts listed in {manifest_path} are missing: {missing[:5]}")
        return files, int(manifest["row_count"])
    files = sorted(data_dir.glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"{data_dir} holds neither _manifest.json nor *.parquet files")
    return files, None


def _empty_frame(files: list[Path], manifest_dir: Path) -> object | None:
    """A zero-row frame with the dataset's columns, for a dataset without rows."""
    import pyarrow as pa

    manifest_path = manifest_dir / "_manifest.json"
    if files or not manifest_path.is_file():
        return None
    fields = json.loads(manifest_path.read_text(encoding="utf-8")).get("schema") or []
    return pa.schema([pa.field(f["name"], pa.string()) for f in fields]).empty_table().to_pandas()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--suite", required=True, type=Path)
    parser.add_argument("--output-dir", required=True, type=Path)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--dataset-uri", default=None)
    args = parser.parse_args(argv)

    try:
        _ensure_great_expectations()
        sys.path.insert(0, str(HERE))
        import gx_validation

        suite = gx_validation.load_suite(args.suite)
        files, total_rows = dataset_files(args.data_dir)
        document = gx_validation.validate_files(
            [str(f) for f in files],
            suite,
            batch_rows=args.batch_rows,
            total_rows=total_rows,
            dataset_uri=args.dataset_uri,
            empty_frame=_empty_frame(files, args.data_dir),
        )
        written = gx_validation.write_report(document, args.output_dir)
    except Exception as exc:
        message = f"validation could not run: {type(exc).__name__}: {exc}"
        print(message, file=sys.stderr, flush=True)
        try:
            FAILURE_FILE.parent.mkdir(parents=True, exist_ok=True)
            FAILURE_FILE.write_text(message[:1024], encoding="utf-8")
        except OSError:
            pass
        return 1
    summary = document["summary"]
    print(
        f"Validation {'PASSED' if summary['success'] else 'FAILED'}: {summary['successful_expectations']}/"
        f"{summary['evaluated_expectations']} expectations met on {summary['row_count']} rows; "
        f"report {written['result']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
