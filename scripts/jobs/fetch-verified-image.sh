#!/usr/bin/env bash
# fetch-verified-image.sh URL FILE: downloads the appliance image at URL to FILE only if its
# sha256 matches the published URL.sha256 (sha256sum format: "<hex>  <name>"). A file already at
# FILE with the right checksum is kept, so a node image that pre-cached it downloads nothing.
# devstack's upload_image then finds FILE in its files/ directory and uses it as is.
set -euo pipefail

AKANDA_CI_JOBS_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

[[ $# -eq 2 ]] || die "usage: fetch-verified-image.sh URL FILE"
IMAGE_URL=$1
IMAGE_FILE=$2
require_url IMAGE_URL
require_safe_path IMAGE_FILE

curl_get() {
  curl --fail --silent --show-error --location --retry 3 --retry-delay 2 --connect-timeout 20 "$@"
}

expected=$(curl_get -- "$IMAGE_URL.sha256") || die "cannot download the checksum $(shown "$IMAGE_URL.sha256")"
expected=${expected%%[[:space:]]*}
[[ $expected =~ ^[0-9a-f]{64}$ ]] || die "$(shown "$IMAGE_URL.sha256") does not hold a sha256 checksum"

actual_sum() {
  local sum
  sum=$(sha256sum -- "$1")
  echo "${sum%% *}"
}

if [[ -s $IMAGE_FILE && $(actual_sum "$IMAGE_FILE") == "$expected" ]]; then
  log "cached image $(shown "$IMAGE_FILE") matches sha256 $expected"
  exit 0
fi
mkdir -p -- "$(dirname -- "$IMAGE_FILE")"
partial="$IMAGE_FILE.part"
curl_get --output "$partial" -- "$IMAGE_URL" || die "cannot download the image $(shown "$IMAGE_URL")"
actual=$(actual_sum "$partial")
if [[ $actual != "$expected" ]]; then
  rm -f -- "$partial"
  die "image $(shown "$IMAGE_URL") has sha256 $actual but $(shown "$IMAGE_URL.sha256") says $expected: not using it"
fi
mv -f -- "$partial" "$IMAGE_FILE"
log "downloaded $(shown "$IMAGE_URL"), sha256 $expected verified"
