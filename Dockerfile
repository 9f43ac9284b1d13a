# Astro Runtime for Airflow 3.3 on Python 3.12, the same Airflow and Python as Amazon MWAA 3.3.1.
# The runtime image installs requirements.txt and packages.txt and copies dags/, plugins/ and include/.
FROM astrocrpublic.azurecr.io/runtime:3.3-1-python-3.12

ENV ML_LIFECYCLE_ENV=local
