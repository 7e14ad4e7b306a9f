#!/usr/bin/env bash
# prepare-repos.sh [--manifest FILE] PROJECT...
#
# Makes $AKANDA_CI_WORKSPACE/<project> a checkout of each PROJECT: a project the agent already
# prepared (the change under test and its Depends-On changes, $AKANDA_CI_PREPARED_PROJECTS) is
# kept at the change's ref; any other is cloned from $AKANDA_CI_GIT_URL/<project> at the target
# branch, using the node image's git mirror ($AKANDA_CI_GIT_MIRROR_DIR/<project>.git) as a
# reference when there is one, so only objects newer than the mirror cross the network.
# A project without the target branch falls back to "<series>-eol" for stable/<series> (how
# OpenStack retires branches), then to master.
# The manifest has one tab-separated line per project: project, commit, where it came from.
set -euo pipefail

AKANDA_CI_JOBS_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

manifest=/dev/null
if [[ ${1:-} == --manifest ]]; then
  [[ $# -ge 2 ]] || die "--manifest needs a file"
  manifest=$2
  shift 2
fi
[[ $# -ge 1 ]] || die "usage: prepare-repos.sh [--manifest FILE] PROJECT..."

require_safe_path AKANDA_CI_WORKSPACE
require_branch AKANDA_CI_BRANCH
require_match AKANDA_CI_GIT_URL '^(https?|file|ssh|git)://[A-Za-z0-9._~%+=@:,/-]+$' 'a plain git URL'
MIRROR_DIR=${AKANDA_CI_GIT_MIRROR_DIR:-/opt/git}
require_safe_path MIRROR_DIR
load_prepared_projects
for project in "$@"; do
  is_project_name "$project" || die "not a valid project name: $(shown "$project")"
done

is_prepared() {
  local project
  for project in ${PREPARED_PROJECTS[@]+"${PREPARED_PROJECTS[@]}"}; do
    [[ $project == "$1" ]] && return 0
  done
  return 1
}

has_commit() {
  git -C "$1" rev-parse -q --verify "$2^{commit}" >/dev/null
}

clone_at_branch() {
  local project=$1 dir="$AKANDA_CI_WORKSPACE/$1"
  local reference=()
  if [[ -d $MIRROR_DIR/$project.git ]]; then reference=(--reference-if-able "$MIRROR_DIR/$project.git"); fi
  rm -rf -- "$dir"
  mkdir -p -- "$(dirname -- "$dir")"
  run git clone --quiet --no-checkout ${reference[@]+"${reference[@]}"} -- "$AKANDA_CI_GIT_URL/$project" "$dir" ||
    die "cannot clone $project from $(shown "$AKANDA_CI_GIT_URL/$project")"
  local series=${AKANDA_CI_BRANCH#stable/} target source
  if has_commit "$dir" "refs/remotes/origin/$AKANDA_CI_BRANCH"; then
    target="refs/remotes/origin/$AKANDA_CI_BRANCH" source="branch $AKANDA_CI_BRANCH"
  elif [[ $AKANDA_CI_BRANCH == stable/* ]] && has_commit "$dir" "refs/tags/$series-eol"; then
    target="refs/tags/$series-eol" source="tag $series-eol (no branch $AKANDA_CI_BRANCH)"
  elif has_commit "$dir" refs/remotes/origin/master; then
    target=refs/remotes/origin/master source="branch master (no branch $AKANDA_CI_BRANCH)"
  else
    die "$project has neither branch $AKANDA_CI_BRANCH nor master"
  fi
  run git -C "$dir" checkout --quiet --detach "$target"
  SOURCE=$source
}

for project in "$@"; do
  dir="$AKANDA_CI_WORKSPACE/$project"
  # The project under test is always the agent's checkout, even if the list forgot it.
  if is_prepared "$project" || [[ $project == "${AKANDA_CI_PROJECT:-}" ]]; then
    git -C "$dir" rev-parse --git-dir >/dev/null 2>&1 ||
      die "$project is in AKANDA_CI_PREPARED_PROJECTS but $(shown "$dir") is not a git checkout"
    SOURCE="change under test or Depends-On (prepared by the agent)"
  else
    clone_at_branch "$project"
  fi
  revision=$(git -C "$dir" rev-parse HEAD)
  log "$project at $revision: $SOURCE"
  printf '%s\t%s\t%s\n' "$project" "$revision" "$SOURCE" >>"$manifest"
done
