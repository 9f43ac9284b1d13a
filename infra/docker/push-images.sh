#!/usr/bin/env bash
# Build the project's own SageMaker images (include/images/<name>/Dockerfile) and push them to this
# account's ECR in this region, tagged with the Dockerfile's org.opencontainers.image.version label (the tag
# include/config/*.yaml names) and with the commit. The devstack derives its local environments from the
# same Dockerfiles, so what CI pushes is what local runs tested.
#
# Needs: docker, the AWS CLI, credentials allowed to push to ECR (infra/iam, the deploy role).
# Usage: infra/docker/push-images.sh [region]    (default: $AWS_REGION)
set -euo pipefail

region="${1:-${AWS_REGION:?set AWS_REGION or pass the region}}"
account="$(aws sts get-caller-identity --query Account --output text)"
registry="${account}.dkr.ecr.${region}.amazonaws.com"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
root="$(cd "$(dirname "$0")/../.." && pwd)"

aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"

for dockerfile in "$root"/include/images/*/Dockerfile; do
    name="$(basename "$(dirname "$dockerfile")")"
    version="$(sed -n 's/^LABEL org.opencontainers.image.version="\([^"]*\)".*/\1/p' "$dockerfile")"
    if [ -z "$version" ]; then
        echo "$dockerfile: no LABEL org.opencontainers.image.version=\"...\"" >&2
        exit 1
    fi
    # The base is a SageMaker framework image: log in to its registry too (its account is an ARG default).
    base_account="$(sed -n 's/^ARG BASE_ACCOUNT=\([0-9]*\).*/\1/p' "$dockerfile")"
    if [ -n "$base_account" ]; then
        aws ecr get-login-password --region "$region" |
            docker login --username AWS --password-stdin "${base_account}.dkr.ecr.${region}.amazonaws.com"
    fi
    aws ecr describe-repositories --region "$region" --repository-names "$name" >/dev/null 2>&1 ||
        aws ecr create-repository --region "$region" --repository-name "$name" \
            --image-scanning-configuration scanOnPush=true >/dev/null
    echo "building $registry/$name:$version ($commit)"
    docker build --build-arg "REGION=$region" \
        -t "$registry/$name:$version" -t "$registry/$name:$commit" "$(dirname "$dockerfile")"
    docker push "$registry/$name:$version"
    docker push "$registry/$name:$commit"
done
