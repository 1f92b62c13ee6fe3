#!/usr/bin/env bash
# Build the goe2mqtt image where no image registry is reachable: a Debian bookworm base
# made from Debian's packages (mmdebstrap), then the Dockerfile with buildah.
#   scripts/build-image.sh [TAG]        (default localhost/goe2mqtt:latest)
# Needs root, buildah and mmdebstrap (apt-get install -y buildah mmdebstrap). Where a
# registry is reachable, `docker build .` or `buildah bud .` does the same from
# python:3.11-slim.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/goe2mqtt:latest}
base=localhost/goe2mqtt-base:bookworm
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}  # works inside containers too

if ! buildah inspect --type image "$base" >/dev/null 2>&1; then
  rootfs=$(mktemp --suffix=.tar)
  trap 'rm -f "$rootfs"' EXIT
  # Python 3.11 with venv, useradd, CA certificates; no docs, man pages or locales.
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-venv,passwd,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$rootfs"
  container=$(buildah from scratch)
  buildah add --quiet "$container" "$rootfs" /
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$container"
  buildah commit --quiet "$container" "$base" >/dev/null
  buildah rm "$container" >/dev/null
fi

# A machine behind a TLS-inspecting proxy trusts its CA through PIP_CERT: lend it to
# the build's pip (mounted for RUN steps only, never part of the image).
trust=()
if [ -n "${PIP_CERT:-}" ] && [ -r "$PIP_CERT" ]; then
  pipconf=$(mktemp)
  printf '[global]\ncert = /run/host-ca.crt\n' >"$pipconf"
  trust=(--volume "$PIP_CERT:/run/host-ca.crt:ro" --volume "$pipconf:/etc/pip.conf:ro")
fi
buildah bud --quiet --isolation chroot --layers=false --format docker "${trust[@]}" \
  --build-arg BASE="$base" --tag "$tag" .
buildah rmi --prune >/dev/null 2>&1 || true  # the image this tag replaced (vfs: full copies)
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$tag"
