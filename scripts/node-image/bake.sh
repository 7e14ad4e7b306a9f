#!/usr/bin/env bash
# bake.sh [STEP...]: turns a fresh Ubuntu 24.04 instance into the akanda-ci node image, so a
# devstack job starts in seconds and devstack runs in minutes (docs/jobs.md "The node image").
# Run as root by the EC2 Image Builder component (component.yaml); each step can be re-run, and
# re-running refreshes what it cached.
#
#   tools      the packages every job needs (git, tox, stestr/os-testr, diskimage-builder...)
#   user       the `stack` user devstack runs as, with passwordless sudo and an SSH key
#   mirrors    bare git mirrors of projects.txt under $AKANDA_CI_GIT_MIRROR_DIR (/opt/git)
#   packages   every Debian package devstack installs, downloaded into apt's cache
#   wheels     wheels of OpenStack's upper-constraints under $AKANDA_CI_WHEELHOUSE (/opt/wheelhouse)
#   files      files devstack downloads (CirrOS, the latest appliance image) under
#              $AKANDA_CI_FILES_CACHE (/opt/cache/files)
#   clean      drops what must be unique per instance (machine id, SSH host keys)
# With no STEP: all of them, in that order.
#
# Sources (not from Gerrit): AKANDA_CI_GIT_BASE (https://review.opendev.org),
# AKANDA_CI_BAKE_BRANCHES ("master", space-separated: each branch's packages and wheels),
# AKANDA_CI_APPLIANCE_IMAGE_URL (the rolling image to pre-cache; optional).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AKANDA_CI_JOBS_LIB="$HERE/../jobs/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

GIT_BASE=${AKANDA_CI_GIT_BASE:-https://review.opendev.org}
MIRROR_DIR=${AKANDA_CI_GIT_MIRROR_DIR:-/opt/git}
WHEELHOUSE=${AKANDA_CI_WHEELHOUSE:-/opt/wheelhouse}
FILES_CACHE=${AKANDA_CI_FILES_CACHE:-/opt/cache/files}
BRANCHES=${AKANDA_CI_BAKE_BRANCHES:-master}
PROJECTS_FILE=${AKANDA_CI_BAKE_PROJECTS_FILE:-$HERE/projects.txt}
CIRROS_URL=${AKANDA_CI_CIRROS_URL:-https://download.cirros-cloud.net/0.6.2/cirros-0.6.2-x86_64-disk.img}
require_match GIT_BASE '^(https?|file|ssh|git)://[A-Za-z0-9._~%+=@:,/-]+$' 'a plain git URL'
require_safe_path MIRROR_DIR
require_safe_path WHEELHOUSE
require_safe_path FILES_CACHE
for branch in $BRANCHES; do
  is_branch_name "$branch" || die "AKANDA_CI_BAKE_BRANCHES has an invalid branch: $(shown "$branch")"
done

projects() {
  local line list_name=${PROJECTS_FILE##*/}
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [[ -z $line ]] && continue
    is_project_name "$line" || die "$list_name lists an invalid project: $(shown "$line")"
    echo "$line"
  done <"$PROJECTS_FILE"
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

step_tools() {
  apt-get update -q
  # nodejs: the node agent (bundled for Ubuntu 24.04's Node.js 18), so the user data installs nothing.
  apt_install nodejs git curl ca-certificates python3 python3-pip python3-venv python3-dev build-essential \
    python3-stestr python3-subunit python3-os-testr sudo \
    debootstrap qemu-utils kpartx squashfs-tools dosfstools gdisk
  # tox 3 and virtualenv < 20.22, the last to create py27 environments and to read Kilo-era
  # tox.ini files; Ubuntu's tox is 4. Ahead of it on PATH.
  python3 -m venv /opt/tox
  /opt/tox/bin/pip install -q 'tox<4' 'virtualenv<20.22'
  ln -sf /opt/tox/bin/tox /usr/local/bin/tox
  # diskimage-builder is not packaged for Ubuntu 24.04: a venv keeps it off the system python.
  python3 -m venv /opt/diskimage-builder
  /opt/diskimage-builder/bin/pip install -q --upgrade diskimage-builder
  ln -sf /opt/diskimage-builder/bin/disk-image-create /usr/local/bin/disk-image-create
  # Boot-time upgrades hold the apt lock just when devstack wants it.
  systemctl disable --now unattended-upgrades.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
}

step_user() {
  id -u stack >/dev/null 2>&1 || useradd --system --create-home --home-dir /opt/stack --shell /bin/bash stack
  printf 'stack ALL=(ALL) NOPASSWD: ALL\n' >/etc/sudoers.d/50_stack
  chmod 0440 /etc/sudoers.d/50_stack
  if [[ ! -f /opt/stack/.ssh/id_rsa ]]; then
    runuser -u stack -- mkdir -p /opt/stack/.ssh
    runuser -u stack -- ssh-keygen -q -t rsa -N '' -f /opt/stack/.ssh/id_rsa
  fi
}

# Branches and tags only: refs/changes/* would make nova's mirror several times larger, and
# jobs fetch the change refs they need from Gerrit anyway.
mirror_one() {
  local project=$1 mirror="$MIRROR_DIR/$1.git"
  if [[ ! -d $mirror ]]; then
    mkdir -p -- "$mirror" &&
      git -C "$mirror" init --quiet --bare &&
      git -C "$mirror" remote add origin "$GIT_BASE/$project" &&
      git -C "$mirror" config remote.origin.fetch '+refs/heads/*:refs/heads/*' &&
      git -C "$mirror" config --add remote.origin.fetch '+refs/tags/*:refs/tags/*' || return
  fi
  # Called in a `||` list, where set -e does not apply: every failure must return.
  git -C "$mirror" fetch --quiet --prune origin || return
  git -C "$mirror" gc --auto --quiet
}

step_mirrors() {
  local project
  while IFS= read -r project; do
    log "mirroring $project"
    mirror_one "$project" || die "cannot mirror $project from $(shown "$GIT_BASE/$project")"
  done < <(projects)
}

# The package names devstack's files/debs lists hold, minus the ones it marks NOPRIME
# (installed later only by the services that need them).
devstack_packages() {
  local debs=$1 file line
  for file in "$debs"/*; do
    [[ -f $file ]] || continue
    while IFS= read -r line || [[ -n $line ]]; do
      [[ $line == *NOPRIME* ]] && continue
      line=${line%%#*}
      read -r line _ <<<"$line" || true
      [[ -n $line && $line =~ ^[a-z0-9][a-z0-9.+-]*$ ]] && echo "$line"
    done <"$file"
  done | sort -u
}

with_branch_checkout() {
  local project=$1 branch=$2 dir
  dir=$(mktemp -d)
  git clone --quiet --branch "$branch" --depth 1 "file://$MIRROR_DIR/$project.git" "$dir/$(basename "$project")"
  echo "$dir/$(basename "$project")"
}

step_packages() {
  local branch devstack
  for branch in $BRANCHES; do
    devstack=$(with_branch_checkout openstack/devstack "$branch")
    mapfile -t packages < <(devstack_packages "$devstack/files/debs")
    log "downloading ${#packages[@]} devstack packages for $branch"
    # Download only: devstack installs them itself, now from the local cache.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --download-only "${packages[@]}" ||
      log "some devstack packages for $branch are not in this Ubuntu release; the rest are cached"
    rm -rf -- "$(dirname "$devstack")"
  done
}

step_wheels() {
  local branch requirements
  mkdir -p "$WHEELHOUSE"
  python3 -m venv /opt/wheel-builder
  /opt/wheel-builder/bin/pip install -q --upgrade pip wheel
  for branch in $BRANCHES; do
    requirements=$(with_branch_checkout openstack/requirements "$branch")
    log "building wheels of upper-constraints.txt for $branch"
    # One package at a time: a package that cannot build here must not stop the others.
    grep -E '^[A-Za-z0-9]' "$requirements/upper-constraints.txt" | cut -d';' -f1 |
      xargs -P "$(nproc)" -I{} /opt/wheel-builder/bin/pip wheel -q --no-deps -w "$WHEELHOUSE" {} ||
      log "some wheels did not build for $branch; pip builds those during devstack"
    rm -rf -- "$(dirname "$requirements")"
  done
  # pip prefers these wheels when the pinned version matches, and still reaches PyPI for the rest.
  printf '[global]\nfind-links = %s\n' "$WHEELHOUSE" >/etc/pip.conf
}

step_files() {
  mkdir -p "$FILES_CACHE"
  curl --fail --silent --show-error --location -o "$FILES_CACHE/${CIRROS_URL##*/}" "$CIRROS_URL"
  if [[ -n ${AKANDA_CI_APPLIANCE_IMAGE_URL:-} ]]; then
    require_url AKANDA_CI_APPLIANCE_IMAGE_URL
    "$HERE/../jobs/fetch-verified-image.sh" "$AKANDA_CI_APPLIANCE_IMAGE_URL" \
      "$FILES_CACHE/${AKANDA_CI_APPLIANCE_IMAGE_URL##*/}"
  fi
}

# Per-instance identity only: apt's archives and lists stay, they are the cache.
step_clean() {
  rm -f /etc/ssh/ssh_host_*
  truncate -s 0 /etc/machine-id
}

steps=("$@")
((${#steps[@]} > 0)) || steps=(tools user mirrors packages wheels files clean)
for step in "${steps[@]}"; do
  case $step in
    tools | user | mirrors | packages | wheels | files | clean)
      log "bake step: $step"
      "step_$step"
      ;;
    list-packages)
      # list-packages DEVSTACK_DIR: what the packages step would download (for tests and people)
      devstack_packages "${2:?list-packages needs a devstack checkout}/files/debs"
      exit 0
      ;;
    *) die "unknown step $(shown "$step") (tools user mirrors packages wheels files clean list-packages)" ;;
  esac
done
