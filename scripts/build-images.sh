#!/usr/bin/env bash
# Build the api and worker images with docker or podman (scripts/container-engine.sh), cached by
# content: each image is tagged c-<hash of its Dockerfile, .dockerignore, the sources it copies and
# the base image> and only built when that tag is missing; then tagged IMAGE_TAG (default dev).
#
# PYTHON_IMAGE: the base (a build argument of both Dockerfiles). Unset: docker builds on the
# Dockerfiles' default (the official python image); podman builds on
# localhost/python-base:3.11-bookworm, bootstrapped from Debian packages when missing
# (scripts/bootstrap-base-image.sh), since CI reaches no image registry. With podman and a registry,
# pass PYTHON_IMAGE=python:3.11.14-slim-bookworm.
#
# Prints one line per image: `<service> <image>:c-<hash>` (what tests/containers runs).
#   scripts/build-images.sh [api] [worker]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/container-engine.sh
source scripts/container-engine.sh
IMAGE_TAG="${IMAGE_TAG:-dev}"
SERVICES=("$@")
[ "${#SERVICES[@]}" -gt 0 ] || SERVICES=(api worker)

if [ -z "${PYTHON_IMAGE:-}" ] && [ "$ENGINE" = podman ]; then
  PYTHON_IMAGE="$(bash scripts/bootstrap-base-image.sh)"
fi
base_args=()
base_id="default"
if [ -n "${PYTHON_IMAGE:-}" ]; then
  base_args=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
  base_id="$PYTHON_IMAGE $("$ENGINE" image inspect --format '{{.Id}}' "$PYTHON_IMAGE" 2>/dev/null || echo pulled)"
fi
version="$(awk -F'"' '/^appVersion:/ {print $2}' charts/jobengine/Chart.yaml)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
prefix=""
format_args=()
if [ "$ENGINE" = podman ]; then
  prefix="localhost/"
  # Docker's image format, as docker builds it: the OCI format has no HEALTHCHECK, and podman drops it
  format_args=(--format docker)
fi

content_hash() {  # the build's inputs, paths relative to the repository root
  local svc="$1"
  {
    echo "$base_id ${format_args[*]:-}"
    find "services/$svc/Dockerfile" .dockerignore libs/jobengine/pyproject.toml libs/jobengine/src \
         "services/$svc/pyproject.toml" "services/$svc/requirements.txt" "services/$svc/src" -type f \
         ! -name '*.pyc' ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

for svc in "${SERVICES[@]}"; do
  image="${prefix}jobengine-$svc"
  tag="c-$(content_hash "$svc")"
  if ! "$ENGINE" image inspect "$image:$tag" >/dev/null 2>&1; then
    echo "build-images: building $image:$tag with $ENGINE${PYTHON_IMAGE:+ on $PYTHON_IMAGE}" >&2
    "$ENGINE" build --network host "${base_args[@]}" "${format_args[@]}" \
      --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
      -f "services/$svc/Dockerfile" -t "$image:$tag" . >&2
  fi
  "$ENGINE" tag "$image:$tag" "$image:$IMAGE_TAG"
  echo "$svc $image:$tag"
done
