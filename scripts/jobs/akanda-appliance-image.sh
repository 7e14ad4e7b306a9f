#!/usr/bin/env bash
# akanda-appliance-image.sh [options]: builds the appliance qcow2 with diskimage-builder from
# the appliance repositories at the ref under test (post: the merged commit) and writes into
# $AKANDA_CI_ARTIFACT_DIR (names fixed in docs/design.md "Image artifacts"):
#   akanda-appliance.qcow2          the image
#   akanda-appliance.qcow2.sha256   "<sha256>  akanda-appliance.qcow2" (sha256sum format)
#   manifest.json                   source commits, elements, DIB version, size, build time
#
#   --dry-run            prepare the repositories and write commands.txt, build nothing
#   --elements "E ..."   diskimage-builder elements (default: "debian vm <element> debug-user")
#   --element NAME       the appliance element, pinned to the checkout (default: akanda, or
#                        astara after the rename)
#   --release NAME       DIB_RELEASE (default: jessie, the appliance's Debian release)
#   --mirror URL         DIB_DISTRIBUTION_MIRROR (default: http://archive.debian.org/debian)
#   --security-mirror URL  Debian security mirror ("" turns the security suite off)
#   --project PROJECT    an appliance repository to prepare (may repeat; default: the
#                        akanda-appliance and akanda-appliance-builder repositories); the
#                        first holds the appliance code the element installs
set -euo pipefail

AKANDA_CI_JOBS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AKANDA_CI_JOBS_LIB="$AKANDA_CI_JOBS_DIR/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

IMAGE_NAME=akanda-appliance
elements=''
element=''
release=jessie
mirror=http://archive.debian.org/debian
security_mirror=http://archive.debian.org/debian-security
projects=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --elements) elements=${2?--elements needs a value} && shift ;;
    --element) element=${2?--element needs a name} && shift ;;
    --release) release=${2?--release needs a name} && shift ;;
    --mirror) mirror=${2?--mirror needs a URL} && shift ;;
    --security-mirror) security_mirror=${2?--security-mirror needs a URL} && shift ;;
    --project) projects+=("${2?--project needs a name}") && shift ;;
    *) die "unknown option $(shown "$1") (see the top of $0)" ;;
  esac
  shift
done

validate_job_env
require_match AKANDA_CI_GIT_URL '^(https?|file|ssh|git)://[A-Za-z0-9._~%+=@:,/-]+$' 'a plain git URL'
require_match release '^[a-z][a-z0-9.-]*$' 'a Debian release name'
require_url mirror
[[ -z $security_mirror ]] || require_url security_mirror
# The element name becomes part of environment variable names (DIB_REPOREF_<element>).
[[ -z $element ]] || require_match element '^[a-z][a-z0-9_]*$' 'an element name of a-z, 0-9 and _'
require_match elements '^[a-z0-9 _-]*$' 'element names separated by spaces'
((${#projects[@]} > 0)) || projects=(stackforge/akanda-appliance stackforge/akanda-appliance-builder)
for project in "${projects[@]}"; do
  is_project_name "$project" || die "--project: not a valid project name: $(shown "$project")"
done

mkdir -p "$AKANDA_CI_LOG_DIR" "$AKANDA_CI_ARTIFACT_DIR"
commands_init "$AKANDA_CI_LOG_DIR/commands.txt"
export AKANDA_CI_STARTED_AT COMMANDS_FILE
started=$(date -u +%s)

: >"$AKANDA_CI_LOG_DIR/repos.txt"
"$AKANDA_CI_JOBS_DIR/prepare-repos.sh" --manifest "$AKANDA_CI_LOG_DIR/repos.txt" "${projects[@]}"

# The image must hold exactly the commit under test: for post that is the merged commit
# ($AKANDA_CI_REVISION), even if the branch moved on before this node fetched it.
under_test="$AKANDA_CI_WORKSPACE/$AKANDA_CI_PROJECT"
for project in "${projects[@]}"; do
  [[ $project == "$AKANDA_CI_PROJECT" ]] || continue
  if ! git -C "$under_test" rev-parse -q --verify "$AKANDA_CI_REVISION^{commit}" >/dev/null; then
    run_always git -C "$under_test" fetch --quiet origin "$AKANDA_CI_REF" ||
      die "cannot fetch $AKANDA_CI_REF of $AKANDA_CI_PROJECT"
  fi
  run_always git -C "$under_test" checkout --quiet --detach "$AKANDA_CI_REVISION"
  rewritten=$(mktemp)
  while IFS=$'\t' read -r name revision source; do
    [[ $name == "$AKANDA_CI_PROJECT" ]] && revision=$AKANDA_CI_REVISION
    printf '%s\t%s\t%s\n' "$name" "$revision" "$source"
  done <"$AKANDA_CI_LOG_DIR/repos.txt" >"$rewritten"
  mv -f -- "$rewritten" "$AKANDA_CI_LOG_DIR/repos.txt"
done

# The elements moved from akanda-appliance-builder into akanda-appliance in June 2015: use the
# first prepared repository that has them.
elements_repo=''
elements_path=''
for project in "${projects[@]}"; do
  for candidate in diskimage-builder/elements elements; do
    if [[ -z $elements_path && -d $AKANDA_CI_WORKSPACE/$project/$candidate ]]; then
      elements_repo=$project
      elements_path="$AKANDA_CI_WORKSPACE/$project/$candidate"
    fi
  done
done
[[ -n $elements_path ]] || die "none of ${projects[*]} has diskimage-builder elements"
if [[ -z $element ]]; then
  element=akanda
  [[ -d $elements_path/astara ]] && element=astara
fi
[[ -d $elements_path/$element ]] || die "element $element not found in $(shown "$elements_path")"
elements=${elements:-debian vm $element debug-user}
read -r -a element_list <<<"$elements"
# The element installs the appliance code (the first project, akanda-appliance) from a git
# repository: pin it to the prepared checkout, wherever the elements themselves live.
code_repo=${projects[0]}
repo_dir="$AKANDA_CI_WORKSPACE/$code_repo"
repo_ref=$(awk -F '\t' -v p="$code_repo" '$1 == p { print $2 }' "$AKANDA_CI_LOG_DIR/repos.txt")

work="$AKANDA_CI_WORKSPACE/.image-build"
dib_env=(
  "ELEMENTS_PATH=$elements_path"
  "DIB_REPOLOCATION_$element=$repo_dir"
  "DIB_REPOREF_$element=$repo_ref"
  "DIB_RELEASE=$release"
  "DIB_DISTRIBUTION_MIRROR=$mirror"
)
if [[ -n $security_mirror ]]; then
  dib_env+=("DIB_DEBIAN_SECURITY_MIRROR=$security_mirror")
  # Debian renamed the security suite from <release>/updates to <release>-security in bullseye.
  case $release in
    jessie | stretch | buster) ;;
    *) dib_env+=(DIB_DEBIAN_SECURITY_SUBPATH=-security) ;;
  esac
else
  dib_env+=("DIB_APT_SOURCES_CONF=default:deb $mirror $release main")
fi

run rm -rf "$work"
run mkdir -p "$work"
trap 'stop_limited; exit 143' TERM INT
status=0
run_limited env "${dib_env[@]}" disk-image-create --logfile "$AKANDA_CI_LOG_DIR/diskimage-builder.log" \
  -t qcow2 -o "$work/$IMAGE_NAME" "${element_list[@]}" || status=$?
if [[ $DRY_RUN == 1 ]]; then
  log "dry run: commands.txt is in $AKANDA_CI_LOG_DIR"
  exit 0
fi
if [[ -d $work/$IMAGE_NAME.d/dib-manifests ]]; then
  cp -R "$work/$IMAGE_NAME.d/dib-manifests" "$AKANDA_CI_LOG_DIR/"
fi
if ((status != 0)); then
  compress_logs "$AKANDA_CI_LOG_DIR"
  log "FAILED: disk-image-create exited $status; see diskimage-builder.txt(.gz)"
  exit "$status"
fi

image="$AKANDA_CI_ARTIFACT_DIR/$IMAGE_NAME.qcow2"
mv -f -- "$work/$IMAGE_NAME.qcow2" "$image"
sha=$(cd "$AKANDA_CI_ARTIFACT_DIR" && sha256sum -- "$IMAGE_NAME.qcow2")
printf '%s\n' "$sha" >"$image.sha256"
finished=$(date -u +%s)

# JSON through python's encoder, never by pasting strings together.
python3 - "$AKANDA_CI_LOG_DIR/repos.txt" "$image" "${sha%% *}" "$started" "$finished" \
  "$(disk-image-create --version 2>/dev/null || echo unknown)" "$release" "$elements_repo" "${element_list[@]}" \
  >"$AKANDA_CI_ARTIFACT_DIR/manifest.json" <<'PY'
import json, os, sys, time

repos, image, sha, started, finished, dib_version, release, elements_repo = sys.argv[1:9]
elements = sys.argv[9:]
sources = []
with open(repos) as f:
    for line in f:
        project, revision, source = line.rstrip("\n").split("\t", 2)
        sources.append({"project": project, "revision": revision, "source": source})
env = os.environ
iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))
json.dump(
    {
        "image": os.path.basename(image),
        "sha256": sha,
        "sizeBytes": os.path.getsize(image),
        "project": env["AKANDA_CI_PROJECT"],
        "branch": env["AKANDA_CI_BRANCH"],
        "pipeline": env["AKANDA_CI_PIPELINE"],
        "ref": env["AKANDA_CI_REF"],
        "revision": env["AKANDA_CI_REVISION"],
        "change": int(env["AKANDA_CI_CHANGE"]) if env.get("AKANDA_CI_CHANGE") else None,
        "patchset": int(env["AKANDA_CI_PATCHSET"]) if env.get("AKANDA_CI_PATCHSET") else None,
        "sources": sources,
        "elementsRepository": elements_repo,
        "elements": elements,
        "dibVersion": dib_version,
        "dibRelease": release,
        "startedAt": iso(started),
        "finishedAt": iso(finished),
        "buildSeconds": int(finished) - int(started),
    },
    sys.stdout,
    indent=2,
)
print()
PY
compress_logs "$AKANDA_CI_LOG_DIR"
log "built $IMAGE_NAME.qcow2 ($(stat -c %s "$image") bytes, sha256 ${sha%% *}) in $((finished - started))s"
