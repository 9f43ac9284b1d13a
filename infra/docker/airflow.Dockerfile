# Airflow 3.3.1 on Python 3.12 (the versions of Amazon MWAA 3.3.1) with what MWAA installs from
# requirements.txt, for docker-compose.yaml. DAGs, plugins and include/ are mounted, not copied.
FROM apache/airflow:3.3.1-python3.12

COPY requirements.txt /opt/ml-lifecycle/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.1" -r /opt/ml-lifecycle/requirements.txt
