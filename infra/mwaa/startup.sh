#!/usr/bin/env bash
# Amazon MWAA startup script for ml-lifecycle (uploaded as mwaa/startup.sh by `make deploy`).
#
# MWAA runs it on every Airflow container (scheduler, workers, API server, DAG processor, triggerer) before
# Airflow starts and stops it after 5 minutes; this one only exports variables and takes milliseconds.
# Nothing is installed here: Python packages come from requirements.txt.
#
# It selects the configuration file include/config/<env>.yaml through ML_LIFECYCLE_ENV, taken from,
# in order:
#   1. ML_LIFECYCLE_ENV, when the container already has it;
#   2. the Airflow configuration option ml_lifecycle.env (AirflowConfigurationOptions of the environment,
#      which MWAA passes as AIRFLOW__ML_LIFECYCLE__ENV), as the CloudFormation template sets it;
#   3. the last dash-separated part of the MWAA environment's name (AIRFLOW_ENV_NAME):
#      "ml-lifecycle-dev" selects "dev".

env_name="${ML_LIFECYCLE_ENV:-${AIRFLOW__ML_LIFECYCLE__ENV:-}}"
source="ML_LIFECYCLE_ENV / ml_lifecycle.env"
if [ -z "${env_name}" ] && [ -n "${AIRFLOW_ENV_NAME:-}" ]; then
  env_name="${AIRFLOW_ENV_NAME##*-}"
  env_name="${env_name,,}"
  source="the MWAA environment name ${AIRFLOW_ENV_NAME}"
fi

if [ -z "${env_name}" ]; then
  echo "ml-lifecycle: no environment selected (set the Airflow configuration option ml_lifecycle.env," \
    "or name the MWAA environment <name>-<env>); the DAGs will fall back to 'local'" >&2
else
  export ML_LIFECYCLE_ENV="${env_name}"
  echo "ml-lifecycle: ML_LIFECYCLE_ENV=${ML_LIFECYCLE_ENV} (from ${source})"
fi

# The DAG bundle carries include/ beside the DAG files (dags/include/): configuration, SQL, GX suites and
# the container code. Point the package at it explicitly.
export ML_LIFECYCLE_INCLUDE_DIR="${AIRFLOW_HOME:-/usr/local/airflow}/dags/include"
config_dir="${ML_LIFECYCLE_INCLUDE_DIR}/config"
if [ -n "${env_name}" ] && [ -d "${config_dir}" ] && [ ! -f "${config_dir}/${env_name}.yaml" ]; then
  echo "ml-lifecycle: ${config_dir}/${env_name}.yaml does not exist; available:" \
    "$(cd "${config_dir}" && ls -- *.yaml 2>/dev/null | tr '\n' ' ')" >&2
fi

# pyarrow 25 (pinned by MWAA's constraints) crashes with its bundled mimalloc allocator when libarrow was
# first loaded on a thread that has since exited (apache/arrow#50471); Arrow's system allocator avoids it.
# The package sets the same default on import; setting it here covers every process from the start.
export ARROW_DEFAULT_MEMORY_POOL="${ARROW_DEFAULT_MEMORY_POOL:-system}"
