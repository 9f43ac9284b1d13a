"""Reference DAG for the parse-time benchmark: ten of the Amazon provider's SageMaker operators, wired in a chain.

Not part of the product. It gives the parse cost of a DAG built directly on the provider's operators, for
comparison with this project's DAG files.
"""

from __future__ import annotations

import pendulum
from airflow.providers.amazon.aws.operators.sagemaker import (
    SageMakerEndpointOperator,
    SageMakerModelOperator,
    SageMakerProcessingOperator,
    SageMakerRegisterModelVersionOperator,
    SageMakerTrainingOperator,
    SageMakerTransformOperator,
    SageMakerTuningOperator,
)
from airflow.sdk import DAG, chain

with DAG(
    dag_id="reference_ten_sagemaker_operators",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["benchmark"],
) as dag:
    tasks = [
        SageMakerProcessingOperator(task_id="preprocess", config={"ProcessingJobName": "p1"}),
        SageMakerTrainingOperator(task_id="train", config={"TrainingJobName": "t1"}),
        SageMakerTuningOperator(task_id="tune", config={"HyperParameterTuningJobName": "h1"}),
        SageMakerProcessingOperator(task_id="evaluate", config={"ProcessingJobName": "p2"}),
        SageMakerRegisterModelVersionOperator(
            task_id="register", image_uri="img", model_url="s3://b/m.tar.gz", package_group_name="g"
        ),
        SageMakerModelOperator(task_id="model", config={"ModelName": "m"}),
        SageMakerEndpointOperator(task_id="endpoint", config={"Endpoint": {"EndpointName": "e"}}),
        SageMakerTransformOperator(task_id="transform", config={"Transform": {"TransformJobName": "x"}}),
        SageMakerProcessingOperator(task_id="baseline", config={"ProcessingJobName": "p3"}),
        SageMakerProcessingOperator(task_id="monitor", config={"ProcessingJobName": "p4"}),
    ]
    chain(*tasks)
