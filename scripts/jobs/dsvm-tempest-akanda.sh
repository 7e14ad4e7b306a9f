#!/usr/bin/env bash
# dsvm-tempest-akanda.sh [options]: devstack with the Akanda plugin, then Tempest and/or the
# Akanda functional suite, on a `devstack` node (see docs/jobs.md).
#
#   --dry-run               prepare the repositories, write local.conf and commands.txt into
#                           $AKANDA_CI_LOG_DIR, and stop before anything touches the system
#   --tempest-regex REGEX   the Tempest tests to run (default: $DEFAULT_TEMPEST_REGEX)
#   --tempest-list FILE     run the Tempest tests listed in FILE (one test id a line)
#   --no-tempest            run no Tempest tests
#   --no-functional         do not run the Akanda functional suite (tox -e functional)
#   --localrc NAME=VALUE    an extra local.conf setting (written quoted; may repeat)
#   --project PROJECT       one more repository to prepare and give devstack (may repeat)
#
# Node settings (not from Gerrit): AKANDA_CI_DEVSTACK_DEST (/opt/stack), AKANDA_CI_STACK_USER
# (stack), AKANDA_CI_GIT_MIRROR_DIR (/opt/git), AKANDA_CI_FILES_CACHE (/opt/cache/files),
# AKANDA_CI_KVM_DEVICE (/dev/kvm),
# AKANDA_CI_LIBVIRT_TYPE (kvm|qemu; default: kvm when the KVM device works).
set -euo pipefail

AKANDA_CI_JOBS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AKANDA_CI_JOBS_LIB="$AKANDA_CI_JOBS_DIR/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

# The Kilo spec asks for "a subset of Tempest": the network API and scenario tests that
# exercise routers, which is what Akanda provides.
DEFAULT_TEMPEST_REGEX='^tempest\.(api\.network\.(test_routers|test_floating_ips|test_ports)|scenario\.test_network_basic_ops)'
AKANDA_PROJECTS=(stackforge/akanda-rug stackforge/akanda-neutron stackforge/akanda-appliance
  stackforge/akanda-appliance-builder stackforge/akanda-horizon)
# What devstack clones for the enabled services; prepared here so devstack clones nothing.
OPENSTACK_PROJECTS=(openstack/devstack openstack/requirements openstack/keystone openstack/glance
  openstack/nova openstack/neutron openstack/placement openstack/tempest)

tempest_regex=$DEFAULT_TEMPEST_REGEX
tempest_list=''
run_tempest=1
run_functional=1
localrc=()
extra_projects=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY_RUN=1 ;;
    --tempest-regex) tempest_regex=${2?--tempest-regex needs a value} && shift ;;
    --tempest-list) tempest_list=${2?--tempest-list needs a file} && shift ;;
    --no-tempest) run_tempest=0 ;;
    --no-functional) run_functional=0 ;;
    --localrc) localrc+=("${2?--localrc needs NAME=VALUE}") && shift ;;
    --project) extra_projects+=("${2?--project needs a name}") && shift ;;
    *) die "unknown option $(shown "$1") (see the top of $0)" ;;
  esac
  shift
done

validate_job_env
require_match AKANDA_CI_GIT_URL '^(https?|file|ssh|git)://[A-Za-z0-9._~%+=@:,/-]+$' 'a plain git URL'
DEST=${AKANDA_CI_DEVSTACK_DEST:-/opt/stack}
require_safe_path DEST
STACK_USER=${AKANDA_CI_STACK_USER:-stack}
require_match STACK_USER '^[a-z_][a-z0-9_-]*$' 'a user name'
KVM_DEVICE=${AKANDA_CI_KVM_DEVICE:-/dev/kvm}
FILES_CACHE=${AKANDA_CI_FILES_CACHE:-/opt/cache/files}
stack_home=$DEST
case $AKANDA_CI_IMAGE_MODE in
  none) die "dsvm-tempest-akanda needs the appliance image: give the job needsImage: true (AKANDA_CI_IMAGE_MODE is none)" ;;
  prebuilt) require_url AKANDA_CI_IMAGE_URL ;;
esac
if [[ -n $tempest_list ]]; then
  [[ -f $tempest_list ]] || die "--tempest-list: no such file $(shown "$tempest_list")"
fi
for setting in ${localrc[@]+"${localrc[@]}"}; do
  [[ $setting =~ ^[A-Z_][A-Z0-9_]*= ]] || die "--localrc expects NAME=VALUE with an upper-case NAME: $(shown "$setting")"
  [[ $setting != *$'\n'* && $setting != *$'\r'* ]] || die "--localrc value must be one line: $(shown "$setting")"
done
for project in ${extra_projects[@]+"${extra_projects[@]}"}; do
  is_project_name "$project" || die "--project: not a valid project name: $(shown "$project")"
done

mkdir -p "$AKANDA_CI_LOG_DIR"
commands_init "$AKANDA_CI_LOG_DIR/commands.txt"
export AKANDA_CI_STARTED_AT COMMANDS_FILE
rm -f "$AKANDA_CI_LOG_DIR/failure.txt"

phase=setup
# Set before a failure whose cause is known better than "<phase> exited N" (failure.txt's reason).
FAILURE_REASON=''
FAILURE_HINT=''
PHASE_HINTS=(
  "prepare:repos.txt and commands.txt"
  "devstack:logs/stack.sh.txt(.gz) and the service logs in logs/"
  "tempest:testr_results.html and testrepository.subunit"
  "functional:testr_results.html and testrepository.subunit"
)

# Ends the job cleanly: logs are collected whatever happened, and the console and failure.txt
# say which phase failed and where to look.
finish() {
  local status=$?
  trap - EXIT
  if [[ $DRY_RUN == 1 ]]; then
    ((status == 0)) && log "dry run: local.conf and commands.txt are in $AKANDA_CI_LOG_DIR"
    exit "$status"
  fi
  if [[ -d $DEST ]]; then
    "$AKANDA_CI_JOBS_DIR/collect-devstack-logs.sh" "$DEST" "$AKANDA_CI_LOG_DIR" ||
      log "log collection failed (exit $?)"
  fi
  if ((status != 0)); then
    local hint='commands.txt' entry
    for entry in "${PHASE_HINTS[@]}"; do
      [[ ${entry%%:*} == "$phase" ]] && hint=${entry#*:}
    done
    local why="exited $status"
    ((status == 124 || status == 137)) && why="ran out of the job's time limit"
    ((status == 143)) && why="was stopped (SIGTERM: cancelled, or the agent's time limit)"
    local reason="$phase $why"
    if [[ -n $FAILURE_REASON ]]; then
      reason=$FAILURE_REASON why=$FAILURE_REASON
      hint=${FAILURE_HINT:-$hint}
    fi
    printf 'phase: %s\nstatus: %s\nreason: %s\nsee: %s\n' "$phase" "$status" "$reason" "$hint" \
      >"$AKANDA_CI_LOG_DIR/failure.txt"
    log "FAILED in phase $phase ($why); see $hint"
  fi
  exit "$status"
}
trap finish EXIT
# The agent stops a job with SIGTERM to its process group (cancel, its own time limit): end
# through finish, so the logs are still collected within the agent's grace period.
trap 'stop_limited; exit 143' TERM INT

short_name() {
  echo "${1##*/}"
}

# local.conf is sourced by bash inside devstack: every value is single-quoted, so nothing in it
# can expand or run. quote VALUE sets QUOTED (not $(quote): die must end the script, not a subshell).
quote() {
  local value=$1
  [[ $value != *$'\n'* && $value != *$'\r'* ]] || die "a local.conf value must be one line: $(shown "$value")"
  QUOTED="'${value//\'/\'\\\'\'}'"
}

setting() {
  quote "$2"
  printf '%s=%s\n' "$1" "$QUOTED"
}

kvm_works() {
  [[ -c $KVM_DEVICE ]] || return 1
  # KVM_GET_API_VERSION: a device node alone can exist without working virtualization.
  python3 -c 'import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
sys.exit(0 if fcntl.ioctl(fd, 0xAE00) == 12 else 1)' "$KVM_DEVICE" 2>/dev/null
}

libvirt_type() {
  case ${AKANDA_CI_LIBVIRT_TYPE:-} in
    kvm | qemu) echo "$AKANDA_CI_LIBVIRT_TYPE" ;;
    '') if kvm_works; then echo kvm; else echo qemu; fi ;;
    *) die "AKANDA_CI_LIBVIRT_TYPE must be kvm or qemu: $(shown "$AKANDA_CI_LIBVIRT_TYPE")" ;;
  esac
}

revision_of() {
  local project
  while IFS=$'\t' read -r project rev _; do
    [[ $project == "$1" ]] && echo "$rev" && return 0
  done <"$AKANDA_CI_LOG_DIR/repos.txt"
  return 1
}

# The rug repository carries the devstack plugin; after the rename it is openstack/astara.
find_rug() {
  local project
  for project in "${projects[@]}"; do
    case $(short_name "$project") in akanda-rug | astara) echo "$project" && return 0 ;; esac
  done
  die "no akanda-rug (or astara) repository among the prepared projects"
}

is_in_projects() {
  local project
  for project in "${projects[@]}"; do [[ $(short_name "$project") == "$1" ]] && return 0; done
  return 1
}

is_prepared_short() {
  local project
  for project in ${PREPARED_PROJECTS[@]+"${PREPARED_PROJECTS[@]}"} "$AKANDA_CI_PROJECT"; do
    [[ $(short_name "$project") == "$1" ]] && return 0
  done
  return 1
}

write_local_conf() {
  local rug=$1 out=$2 rug_short plugin service
  rug_short=$(short_name "$rug")
  local rug_revision
  rug_revision=$(revision_of "$rug")
  if [[ $rug_short == astara ]]; then plugin=astara service=astara; else plugin=akanda-rug service=ak-rug; fi
  local build=False
  [[ $AKANDA_CI_IMAGE_MODE == build ]] && build=True
  {
    echo '[[local|localrc]]'
    echo "# akanda-ci $AKANDA_CI_JOB: $AKANDA_CI_PROJECT $AKANDA_CI_REF ($AKANDA_CI_PIPELINE), branch $AKANDA_CI_BRANCH"
    setting DEST "$DEST"
    setting DATA_DIR "$DEST/data"
    setting LOGDIR "$DEST/logs"
    setting LOGFILE "$DEST/logs/stack.sh.log"
    # Kilo-era devstack writes the service (screen-*) logs here; newer ones use the journal.
    setting SCREEN_LOGDIR "$DEST/logs"
    setting LOG_COLOR False
    # The repositories are already in DEST at the refs under test: devstack must not replace them.
    setting RECLONE no
    setting ADMIN_PASSWORD secretadmin
    setting DATABASE_PASSWORD secretdatabase
    setting RABBIT_PASSWORD secretrabbit
    setting SERVICE_PASSWORD secretservice
    setting SERVICE_TOKEN secrettoken
    setting VIRT_DRIVER libvirt
    setting LIBVIRT_TYPE "$LIBVIRT_TYPE"
    # The plugin builds the appliance from $DEST/<appliance>, the checkout that holds the change.
    setting BUILD_AKANDA_APPLIANCE_IMAGE "$build"
    setting BUILD_ASTARA_APPLIANCE_IMAGE "$build"
    if [[ $AKANDA_CI_IMAGE_MODE == prebuilt ]]; then
      setting AKANDA_DEV_APPLIANCE_URL "$AKANDA_CI_IMAGE_URL"
      setting ASTARA_DEV_APPLIANCE_URL "$AKANDA_CI_IMAGE_URL"
    fi
    quote "file://$AKANDA_CI_WORKSPACE/$rug"
    local plugin_url=$QUOTED
    quote "$rug_revision"
    printf 'enable_plugin %s %s %s\n' "$plugin" "$plugin_url" "$QUOTED"
    printf 'enable_service %s q-svc q-agt tempest\n' "$service"
    echo 'disable_service n-net'
    # Horizon costs minutes: only when the change (or a Depends-On) is to the Akanda panels.
    if is_prepared_short akanda-horizon || is_prepared_short astara-horizon; then
      echo 'enable_service horizon'
    else
      echo 'disable_service horizon'
    fi
    if ((${#libs_from_git[@]} > 0)); then
      local libs
      printf -v libs '%s,' "${libs_from_git[@]}"
      setting LIBS_FROM_GIT "${libs%,}"
    fi
    local extra
    for extra in ${localrc[@]+"${localrc[@]}"}; do
      setting "${extra%%=*}" "${extra#*=}"
    done
  } >"$out"
}

# A test list becomes an anchored regex of escaped ids, so both selections run the same way.
list_regex() {
  local ids=() line
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [[ -n $line ]] && ids+=("$(printf '%s' "$line" | sed 's/[][\.*^$+?(){}|]/\\&/g')")
  done <"$1"
  ((${#ids[@]} > 0)) || die "--tempest-list $(shown "$1") lists no tests"
  local IFS='|'
  echo "^(${ids[*]})\$"
}

# devstack refuses to run as root; its user gets its own HOME (pip and tempest write there).
# as_stack DIR CMD...: in DIR as the devstack user. Run by that user itself (a developer's VM),
# nothing is switched or set up.
as_stack() {
  local dir=$1
  shift
  if [[ $STACK_USER == "$(id -un)" ]]; then
    run_limited -C "$dir" "$@"
  else
    run_limited -C "$dir" runuser -u "$STACK_USER" -- env HOME="$stack_home" "$@"
  fi
}

# --- 1. the repositories -----------------------------------------------------------------
phase=prepare
projects=("${AKANDA_PROJECTS[@]}" "${OPENSTACK_PROJECTS[@]}" ${extra_projects[@]+"${extra_projects[@]}"})
# A Depends-On change to anything else is a library devstack would install from PyPI: it must
# come from its checkout instead (LIBS_FROM_GIT), or the change would not be tested.
libs_from_git=()
for project in ${PREPARED_PROJECTS[@]+"${PREPARED_PROJECTS[@]}"} "$AKANDA_CI_PROJECT"; do
  if ! is_in_projects "$(short_name "$project")"; then
    projects+=("$project")
    libs_from_git+=("$(short_name "$project")")
  fi
done
: >"$AKANDA_CI_LOG_DIR/repos.txt"
"$AKANDA_CI_JOBS_DIR/prepare-repos.sh" --manifest "$AKANDA_CI_LOG_DIR/repos.txt" "${projects[@]}"
rug=$(find_rug)

# --- 2. local.conf -------------------------------------------------------------------------
LIBVIRT_TYPE=$(libvirt_type)
log "libvirt type $LIBVIRT_TYPE (KVM device $(shown "$KVM_DEVICE"))"
write_local_conf "$rug" "$AKANDA_CI_LOG_DIR/local.conf"
if [[ -n $tempest_list ]]; then tempest_regex=$(list_regex "$tempest_list"); fi

# --- 3. devstack -----------------------------------------------------------------------------
phase=devstack
run mkdir -p "$DEST"
while IFS=$'\t' read -r project revision _; do
  target="$DEST/$(short_name "$project")"
  run rm -rf "$target"
  run git clone --quiet --no-checkout "$AKANDA_CI_WORKSPACE/$project" "$target"
  run git -C "$target" checkout --quiet --detach "$revision"
done <"$AKANDA_CI_LOG_DIR/repos.txt"
run cp "$AKANDA_CI_LOG_DIR/local.conf" "$DEST/devstack/local.conf"
# Images the node image pre-downloaded (CirrOS, the appliance); devstack skips what is in files/.
if [[ -d $FILES_CACHE ]]; then run cp -R "$FILES_CACHE/." "$DEST/devstack/files/"; fi
if [[ $AKANDA_CI_IMAGE_MODE == prebuilt ]]; then
  # devstack's upload_image reuses files/<name of the URL>: verify it there before devstack runs.
  fetch_status=0
  run "$AKANDA_CI_JOBS_DIR/fetch-verified-image.sh" "$AKANDA_CI_IMAGE_URL" \
    "$DEST/devstack/files/${AKANDA_CI_IMAGE_URL##*/}" || fetch_status=$?
  case $fetch_status in
    0) ;;
    4)
      # After the first deploy, until an image is seeded or an appliance change merges.
      FAILURE_REASON="no appliance image has been published yet: see docs/infrastructure.md#seed-the-first-image"
      FAILURE_HINT="docs/infrastructure.md#seed-the-first-image (the image URL: $AKANDA_CI_IMAGE_URL)"
      exit 4
      ;;
    5)
      FAILURE_REASON="the appliance image does not match its published sha256 (a partial or replaced upload): not used"
      FAILURE_HINT="commands.txt and the job output (the URL, and both checksums)"
      exit 5
      ;;
    *) exit "$fetch_status" ;;
  esac
fi
if [[ $STACK_USER != "$(id -un)" ]]; then
  [[ $(id -u) == 0 || $DRY_RUN == 1 ]] || die "run as root (or as $STACK_USER) to set up devstack"
  if ! id -u "$STACK_USER" >/dev/null 2>&1; then run "$DEST/devstack/tools/create-stack-user.sh"; fi
  stack_home=$(getent passwd "$STACK_USER" | cut -d: -f6 || true)
  stack_home=${stack_home:-$DEST}
  # The plugin puts this key into the appliance for the orchestrator's SSH access.
  if [[ ! -f $stack_home/.ssh/id_rsa.pub ]]; then
    run runuser -u "$STACK_USER" -- mkdir -p "$stack_home/.ssh"
    run runuser -u "$STACK_USER" -- ssh-keygen -q -t rsa -N '' -f "$stack_home/.ssh/id_rsa"
  fi
  run chown -R "$STACK_USER:" "$DEST"
fi
as_stack "$DEST/devstack" ./stack.sh

# --- 4. tests --------------------------------------------------------------------------------
streams=()
if [[ $run_tempest == 1 ]]; then
  phase=tempest
  status=0
  as_stack "$DEST/tempest" tox -e all -- "$tempest_regex" || status=$?
  streams+=("$DEST/tempest")
  tempest_status=$status
else
  tempest_status=0
fi
functional_status=0
if [[ $run_functional == 1 ]]; then
  rug_dir="$DEST/$(short_name "$rug")"
  as_stack "$rug_dir" tox -e functional || functional_status=$?
  streams+=("$rug_dir")
fi

if [[ $DRY_RUN == 1 ]]; then
  record_command "$AKANDA_CI_JOBS_DIR/collect-devstack-logs.sh" "$DEST" "$AKANDA_CI_LOG_DIR"
  exit 0
fi
# subunit v2 streams concatenate: one result page for Tempest and the functional suite.
combined=$(mktemp)
for dir in ${streams[@]+"${streams[@]}"}; do
  part=$(mktemp)
  if last_subunit_stream "$dir" "$part"; then cat "$part" >>"$combined"; fi
  rm -f "$part"
done
publish_subunit "$combined" "$AKANDA_CI_LOG_DIR"
rm -f "$combined"

if ((tempest_status != 0)); then
  phase=tempest
  exit "$tempest_status"
fi
if ((functional_status != 0)); then
  phase=functional
  exit "$functional_status"
fi
log "devstack and the tests passed"
