"""The devstack's stand-in for SageMaker Model Monitor's data-quality analyzer container.

Run as a processing job of the ``sagemaker-model-monitor-analyzer`` image (see
:mod:`devstack.sagemaker.monitor`), or by hand::

    dataset_format='{"csv": {"header": true}}' dataset_source=data/ output_path=out/ \
        python -m devstack.monitor_analyzer --opt-ml /tmp/opt-ml
"""

from __future__ import annotations
