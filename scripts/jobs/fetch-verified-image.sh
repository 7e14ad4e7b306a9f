#!/usr/bin/env bash
# fetch-verified-image.sh URL FILE: downloads the appliance image at URL to FILE only if its
# sha256 matches the published URL.sha256 (sha256sum format: "<hex>  <name>"). A file already at
# FILE with the right checksum is kept, so a node image that pre-cached it downloads nothing.
# devstack's upload_image then finds FILE in its files/ directory and uses it as is.
#
# Exit status: 0 verified; 4 nothing is published at URL or URL.sha256 yet (HTTP 404, or 403, which
# is what CloudFront answers for a missing S3 object behind Origin Access Control): after the first
# deploy, until an image is seeded or published; 5 the image does not match its checksum; 2 bad
# input or any other download failure.
set -euo pipefail

AKANDA_CI_JOBS_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

[[ $# -eq 2 ]] || die "usage: fetch-verified-image.sh URL FILE"
IMAGE_URL=$1
IMAGE_FILE=$2
require_url IMAGE_URL
require_safe_path IMAGE_FILE

SEED_DOC='docs/infrastructure.md#seed-the-first-image'

# fetch URL OUT: GET into OUT; HTTP_STATUS is the final response's status ("000": none).
# Non-2xx responses are failures; transient ones (5xx, 408, 429) and network errors are retried.
HTTP_STATUS=000
fetch() {
  local url=$1 out=$2 curl_status=0
  HTTP_STATUS=$(curl --silent --show-error --location --retry 3 --retry-delay 2 --connect-timeout 20 \
    --write-out '%{http_code}' --output "$out" -- "$url") || curl_status=$?
  ((curl_status == 0)) && [[ $HTTP_STATUS == 2[0-9][0-9] ]]
}

# Stops with status 4 when `url` answered as a missing object does, else with the usual status 2.
fetch_failed() {
  local what=$1 url=$2
  if [[ $HTTP_STATUS == 404 || $HTTP_STATUS == 403 ]]; then
    printf 'akanda-ci: error: no appliance image has been published yet: %s answered HTTP %s (see %s)\n' \
      "$(shown "$url")" "$HTTP_STATUS" "$SEED_DOC" >&2
    exit 4
  fi
  die "cannot download the $what $(shown "$url") (HTTP $HTTP_STATUS)"
}

checksum_file=$(mktemp)
trap 'rm -f -- "$checksum_file"' EXIT
fetch "$IMAGE_URL.sha256" "$checksum_file" || fetch_failed checksum "$IMAGE_URL.sha256"
expected=$(head -c 200 -- "$checksum_file")
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
if ! fetch "$IMAGE_URL" "$partial"; then
  rm -f -- "$partial"
  fetch_failed image "$IMAGE_URL"
fi
actual=$(actual_sum "$partial")
if [[ $actual != "$expected" ]]; then
  rm -f -- "$partial"
  printf 'akanda-ci: error: %s\n' \
    "image $(shown "$IMAGE_URL") has sha256 $actual but $(shown "$IMAGE_URL.sha256") says $expected: not using it" >&2
  exit 5
fi
mv -f -- "$partial" "$IMAGE_FILE"
log "downloaded $(shown "$IMAGE_URL"), sha256 $expected verified"
