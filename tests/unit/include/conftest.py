"""Synthetic feature datasets shaped like the output of include/sql/features.sql."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

CHANNELS = ["POS", "ECOM", "ATM"]
CATEGORIES = ["grocery", "restaurant", "fuel", "travel", "electronics", "online_retail", "entertainment", "health"]
SEGMENTS = ["consumer", "premium", "small_business", "student"]


def make_features(rows: int = 2000, days: int = 20, seed: int = 7, fraud_boost: float = 0.0) -> pd.DataFrame:
    """A feature frame in contract column order with a learnable fraud signal (about 5 % positives).

    :param rows: number of transactions.
    :param days: they are spread evenly over this many days from 2026-01-01.
    :param seed: random seed; the same seed gives the same frame.
    :param fraud_boost: added to the fraud logit (raise it for a higher fraud rate).
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01")
    offsets = np.sort(rng.uniform(0, days * 86400, size=rows))
    event_ts = start + pd.to_timedelta(offsets.round(), unit="s")
    channel = rng.choice(CHANNELS, size=rows, p=[0.6, 0.3, 0.1])
    category = rng.choice(CATEGORIES, size=rows)
    amount = np.round(rng.lognormal(3.5, 1.0, size=rows), 2) + 0.01
    card_present = (channel != "ECOM") & (rng.random(rows) > 0.05)
    is_foreign = rng.random(rows) < 0.08
    count_24h = rng.poisson(2, size=rows)
    avg_7d = np.round(amount * rng.uniform(0.5, 1.5, size=rows), 2)
    hours = event_ts.hour.to_numpy()
    logit = (
        -4.2
        + fraud_boost
        + 1.2 * (channel == "ECOM")
        + 1.0 * ~card_present
        + 1.3 * is_foreign
        + 0.9 * (amount > 150)
        + 0.8 * ((hours < 5) | (hours >= 23))
        + 0.35 * np.maximum(count_24h - 3, 0)
    )
    is_fraud = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    day_of_week = event_ts.dayofweek.to_numpy()
    return pd.DataFrame(
        {
            "transaction_id": [f"tx-{i:06d}" for i in range(rows)],
            "event_ts": event_ts,
            "customer_segment": rng.choice(SEGMENTS, size=rows),
            "amount": amount,
            "log_amount": np.log1p(amount),
            "hour_of_day": hours.astype("int64"),
            "day_of_week": day_of_week.astype("int64"),
            "is_weekend": day_of_week >= 5,
            "card_present": card_present,
            "is_foreign": is_foreign,
            "channel": channel,
            "merchant_category": category,
            "card_txn_count_24h": count_24h.astype("int64"),
            "card_avg_amount_7d": avg_7d,
            "amount_to_card_avg_ratio": amount / avg_7d,
            "is_fraud": is_fraud,
        }
    )


@pytest.fixture(name="make_feature_frame")
def make_feature_frame_fixture() -> Callable[..., pd.DataFrame]:
    """The :func:`make_features` factory."""
    return make_features


CODE = Path(__file__).resolve().parents[3] / "include" / "code"
SCRIPTS = {
    "preprocess": CODE / "preprocessing" / "preprocess.py",
    "train": CODE / "training" / "train.py",
    "evaluate": CODE / "evaluation" / "evaluate.py",
    "inference": CODE / "inference" / "inference.py",
}


def load_script(path: Path, name: str) -> ModuleType:
    """Import a container script from its file, as a module named ``name`` (they are not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def unpack_component(component: str, target: Path) -> Path:
    """Write the files of ``include/code/<component>`` as ``code_package`` archives them (with ``common/``)."""
    from ml_lifecycle.code_package import package_component

    for name, data in package_component(CODE, component).files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


@dataclass(frozen=True)
class PipelineRun:
    """Folders and console output of one preprocess -> train -> evaluate chain run as subprocesses."""

    dataset: pd.DataFrame
    processing: Path
    model_dir: Path
    model_archive: Path
    evaluation: Path
    logs: dict[str, str]


def run_script(
    script: str, args: list[str], env: dict[str, str] | None = None, path: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a container script with the test interpreter, the way a job's entrypoint would.

    :param path: run this copy of the script instead of the one under include/code.
    """
    return subprocess.run(
        [sys.executable, str(path or SCRIPTS[script]), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
        check=False,
    )


def _checked(result: subprocess.CompletedProcess, what: str) -> str:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """Run the three job scripts on a synthetic interval laid out like the container paths."""
    root = tmp_path_factory.mktemp("sagemaker")
    dataset = make_features(rows=2400, days=24, seed=11)
    processing = root / "processing"
    data = processing / "input" / "data"
    data.mkdir(parents=True)
    # parts arrive in no particular order; the split must sort by time itself
    shuffled = dataset.sample(frac=1.0, random_state=3)
    shuffled.iloc[:1000].to_parquet(data / "part-00001.parquet", index=False)
    shuffled.iloc[1000:].to_parquet(data / "part-00000.parquet", index=False)
    logs = {}
    logs["preprocess"] = _checked(
        run_script(
            "preprocess",
            ["--input-dir", str(data), "--output-root", str(processing), "--validation-fraction", "0.2"],
            path=unpack_component("preprocessing", processing / "input" / "code") / "preprocess.py",
        ),
        "preprocess.py",
    )

    model_dir = root / "training" / "model"
    env = {
        "SM_CHANNEL_TRAIN": str(processing / "train"),
        "SM_CHANNEL_VALIDATION": str(processing / "validation"),
        "SM_CHANNEL_PREPROCESSOR": str(processing / "preprocessor"),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(root / "training" / "output" / "data"),
    }
    # hyperparameters rendered the way the training toolkit renders them (sorted --key value pairs)
    hyperparameters = ["--eta", "0.3", "--max_depth", "4", "--num_round", "60", "--sagemaker_program", "train.py"]
    # the training component is shipped alone (as sourcedir.tar.gz), so run it from its archive's files;
    # the serving handlers arrive the way the pipeline sends them, as the ``inference`` channel
    code_dir = root / "training" / "code"
    unpack_component("training", code_dir)
    inference_channel = root / "training" / "input" / "data" / "inference"
    unpack_component("inference", inference_channel)
    env["SM_CHANNEL_INFERENCE"] = str(inference_channel)
    logs["train"] = _checked(run_script("train", hyperparameters, env, code_dir / "train.py"), "train.py")

    archive_dir = root / "evaluation-input" / "model"
    archive_dir.mkdir(parents=True)
    archive = archive_dir / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    evaluation = root / "evaluation-output"
    logs["evaluate"] = _checked(
        run_script(
            "evaluate",
            [
                "--model-dir",
                str(archive_dir),
                "--test-dir",
                str(processing / "test"),
                "--output-dir",
                str(evaluation),
                "--baseline-dir",
                str(root / "evaluation-baseline"),
                "--bias-facet",
                "customer_segment",
            ],
            path=unpack_component("evaluation", root / "evaluation-code") / "evaluate.py",
        ),
        "evaluate.py",
    )
    return PipelineRun(dataset, processing, model_dir, archive, evaluation, logs)
