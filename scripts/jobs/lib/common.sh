# shellcheck shell=bash
# Helpers every job script sources: input validation, the command log, time limits and log
# publishing. Values that came from Gerrit arrive only as environment variables; they are
# validated here before use and only ever expanded inside double quotes.

# The deadline is the job timeout minus a reserve kept for collecting logs after a phase
# timed out, so the agent's own limit never kills the job before its logs are written.
AKANDA_CI_STARTED_AT=${AKANDA_CI_STARTED_AT:-$(date -u +%s)}
COMMANDS_FILE=${COMMANDS_FILE:-}
DRY_RUN=${DRY_RUN:-0}

utc_now() {
  date -u +%Y-%m-%dT%H:%M:%SZ
}

log() {
  printf '%s akanda-ci: %s\n' "$(utc_now)" "$*"
}

# Exit status 2 means "this job was given bad input", never a test failure.
die() {
  printf 'akanda-ci: error: %s\n' "$*" >&2
  exit 2
}

# A value as it would be typed into a shell, so hostile text in messages and logs stays inert.
shown() {
  printf '%q' "$1"
}

require_match() {
  local name=$1 pattern=$2 what=$3
  local value=${!name:-}
  [[ $value =~ $pattern ]] || die "$name is not $what: $(shown "$value")"
}

# Gerrit project names: path segments of letters, digits, ".", "_" and "-", none starting with
# "." or "-" (so no "..", no option-looking names, no absolute paths).
PROJECT_PATTERN='^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$'

is_project_name() {
  [[ $1 =~ $PROJECT_PATTERN && $1 != *..* && ${#1} -le 200 ]]
}

require_project() {
  local name=$1
  is_project_name "${!name:-}" || die "$name is not a valid project name: $(shown "${!name:-}")"
}

is_branch_name() {
  local branch=$1
  [[ $branch =~ ^[A-Za-z0-9][A-Za-z0-9_./-]*$ && $branch != *..* && $branch != *//* && $branch != */ &&
    $branch != *.lock && $branch != */.* && ${#branch} -le 200 ]] &&
    git check-ref-format "refs/heads/$branch"
}

require_branch() {
  local name=$1
  is_branch_name "${!name:-}" || die "$name is not a valid branch name: $(shown "${!name:-}")"
}

require_revision() {
  require_match "$1" '^[0-9a-f]{40}$' 'a 40-hex commit id'
}

require_ref() {
  local name=$1 value=${!1:-}
  if [[ $value =~ ^refs/changes/[0-9]{2}/[0-9]+/[0-9]+$ ]]; then return 0; fi
  if [[ $value == refs/heads/* ]] && is_branch_name "${value#refs/heads/}"; then return 0; fi
  die "$name is not a change ref or branch ref: $(shown "$value")"
}

require_optional_number() {
  require_match "$1" '^([0-9]{1,9})?$' 'a number'
}

# URLs end up in local.conf and on curl's command line: allow only characters that need no
# quoting anywhere, so a URL cannot carry spaces, quotes, "$", backticks or ";".
require_url() {
  require_match "$1" '^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%+=@,/-]*)?$' 'a plain http(s) URL'
}

# Paths that devstack and git will be given; devstack cannot work in paths with spaces anyway.
require_safe_path() {
  require_match "$1" '^/[A-Za-z0-9._/+-]*$' 'an absolute path of letters, digits and ._/+-'
}

# The job context every script needs (docs/design.md "Job environment").
validate_job_env() {
  require_project AKANDA_CI_PROJECT
  require_branch AKANDA_CI_BRANCH
  require_ref AKANDA_CI_REF
  require_revision AKANDA_CI_REVISION
  require_optional_number AKANDA_CI_CHANGE
  require_optional_number AKANDA_CI_PATCHSET
  require_match AKANDA_CI_PIPELINE '^(check|gate|post)$' 'one of check, gate, post'
  require_match AKANDA_CI_JOB '^[A-Za-z0-9][A-Za-z0-9._-]*$' 'a job name'
  require_match AKANDA_CI_IMAGE_MODE '^(build|prebuilt|none)$' 'one of build, prebuilt, none'
  require_safe_path AKANDA_CI_WORKSPACE
  require_safe_path AKANDA_CI_LOG_DIR
  require_safe_path AKANDA_CI_ARTIFACT_DIR
  require_match AKANDA_CI_TIMEOUT '^[0-9]{1,6}$' 'a number of seconds'
  load_prepared_projects
}

# AKANDA_CI_PREPARED_PROJECTS (space-separated, from Gerrit via the agent) into the array
# PREPARED_PROJECTS, every element validated. `read` splits on whitespace (newlines too, with
# -d '') without expanding "*", "?" or "[": an unquoted $VAR in a for loop would glob it against
# the current directory before the name could be checked.
PREPARED_PROJECTS=()
load_prepared_projects() {
  PREPARED_PROJECTS=()
  IFS=$' \t\n' read -r -d '' -a PREPARED_PROJECTS < <(printf '%s' "${AKANDA_CI_PREPARED_PROJECTS:-}") || true
  local project
  for project in ${PREPARED_PROJECTS[@]+"${PREPARED_PROJECTS[@]}"}; do
    is_project_name "$project" || die "AKANDA_CI_PREPARED_PROJECTS has an invalid project name: $(shown "$project")"
  done
}

# --- the command log -----------------------------------------------------------------------
# Every command a job runs is written to commands.txt with a UTC timestamp, quoted so that it
# can be pasted back into a shell. In dry-run mode the commands are written but not run.

commands_init() {
  COMMANDS_FILE=$1
  : >"$COMMANDS_FILE"
  if [[ $DRY_RUN == 1 ]]; then
    printf '# dry run: the commands this job would run, in order\n' >>"$COMMANDS_FILE"
  fi
}

record_command() {
  local line
  printf -v line '%q ' "$@"
  printf '%s $ %s\n' "$(utc_now)" "${line% }" >>"${COMMANDS_FILE:-/dev/null}"
  log "\$ ${line% }"
}

# run CMD...: record, then run (not in dry-run); returns the command's status.
run() {
  record_command "$@"
  [[ $DRY_RUN == 1 ]] && return 0
  local status=0
  "$@" || status=$?
  printf '%s   exit %s\n' "$(utc_now)" "$status" >>"${COMMANDS_FILE:-/dev/null}"
  return "$status"
}

# run_always CMD...: recorded like run, but run in dry-run too (workspace-only changes).
run_always() {
  local DRY_RUN=0
  run "$@"
}

# --- time limits ---------------------------------------------------------------------------

# Seconds left for work before the reserve kept for log collection.
remaining_seconds() {
  local timeout=${AKANDA_CI_TIMEOUT:-3600}
  local reserve=$((timeout / 10))
  ((reserve > 600)) && reserve=600
  ((reserve < 1)) && reserve=1
  local now
  now=$(date -u +%s)
  echo $((AKANDA_CI_STARTED_AT + timeout - reserve - now))
}

# run_limited [-C DIR] CMD...: run (in DIR) within the job's remaining time; status 124 when the
# limit hit. timeout(1) puts the command in a process group of its own, which the agent's SIGTERM
# to the job's group does not reach: stop_limited forwards it.
LIMITED_PID=''
run_limited() {
  local dir=''
  if [[ $1 == -C ]]; then
    dir=$2
    shift 2
  fi
  local left
  left=$(remaining_seconds)
  [[ -z $dir ]] || record_command cd "$dir"
  if ((left <= 0)); then
    record_command "$@"
    log "no time left for: $*"
    return 124
  fi
  record_command timeout --kill-after=30 "$left" "$@"
  [[ $DRY_RUN == 1 ]] && return 0
  local status=0
  (
    [[ -z $dir ]] || cd "$dir" || exit
    exec timeout --kill-after=30 "$left" "$@"
  ) &
  LIMITED_PID=$!
  wait "$LIMITED_PID" || status=$?
  LIMITED_PID=''
  printf '%s   exit %s\n' "$(utc_now)" "$status" >>"${COMMANDS_FILE:-/dev/null}"
  return "$status"
}

# stop_limited: for a TERM/INT trap. Signals the running limited command's process group (timeout
# passes it on, and kills after its grace) and waits for it, so nothing outlives the job.
stop_limited() {
  [[ -n $LIMITED_PID ]] || return 0
  kill -TERM -- "-$LIMITED_PID" 2>/dev/null || kill -TERM "$LIMITED_PID" 2>/dev/null || true
  wait "$LIMITED_PID" 2>/dev/null || true
  LIMITED_PID=''
}

# --- publishing test results ---------------------------------------------------------------

# last_subunit_stream DIR OUT: the newest stestr/testr run kept in DIR, as a subunit v2 stream.
# A project's own tox virtualenv has the runner it was tested with; the system one also reads it.
last_subunit_stream() {
  local dir=$1 out=$2 tool
  for tool in "$dir"/.tox/*/bin/stestr stestr "$dir"/.tox/*/bin/testr testr; do
    case $tool in
      *stestr) [[ -d $dir/.stestr ]] || continue ;;
      *) [[ -d $dir/.testrepository ]] || continue ;;
    esac
    command -v "$tool" >/dev/null 2>&1 || continue
    # `last` exits non-zero when the run had failures; the stream is what matters.
    (cd "$dir" && "$tool" last --subunit) >"$out" 2>/dev/null || true
    [[ -s $out ]] && return 0
  done
  rm -f "$out"
  return 1
}

# publish_subunit STREAM LOG_DIR: the stream as testrepository.subunit, testr_results.html when
# subunit2html exists here, and skipped-tests.txt (test id and reason per line).
publish_subunit() {
  local stream=$1 dir=$2
  if [[ ! -s $stream ]]; then
    log "no subunit stream at $(shown "$stream"); no test results to publish"
    return 0
  fi
  cp "$stream" "$dir/testrepository.subunit"
  if command -v subunit2html >/dev/null 2>&1; then
    subunit2html "$dir/testrepository.subunit" "$dir/testr_results.html" >/dev/null ||
      log "subunit2html failed; testr_results.html not produced"
  else
    log "subunit2html is not installed on this node; testr_results.html not produced (install os-testr)"
  fi
  if python3 "$AKANDA_CI_JOBS_LIB/subunit-skips.py" <"$dir/testrepository.subunit" >"$dir/skipped-tests.txt"; then
    log "$(wc -l <"$dir/skipped-tests.txt") skipped tests listed in skipped-tests.txt"
  else
    rm -f "$dir/skipped-tests.txt"
    log "could not list skipped tests (python3 with the subunit library is needed)"
  fi
}

# compress_logs DIR: OpenStack's convention, so logs open in a browser: *.log becomes *.txt,
# and every text file of 64 KiB or more is gzipped (served with Content-Encoding: gzip).
# The files reviewers open first (local.conf, commands.txt, testr_results.html) stay as they are,
# and so does job-output.txt: the agent is still writing the console log into it.
compress_logs() {
  local dir=$1 file
  while IFS= read -r -d '' file; do
    mv -- "$file" "${file%.log}.txt"
  done < <(find "$dir" -type f -name '*.log' -print0)
  while IFS= read -r -d '' file; do
    case ${file##*/} in
      local.conf | commands.txt | testr_results.html | failure.txt | index.html | job-output.txt) continue ;;
    esac
    if grep -Iq . "$file" 2>/dev/null; then gzip -9 -f -- "$file"; fi
  done < <(find "$dir" -type f ! -name '*.gz' ! -name '*.subunit' -size +63k -print0)
}
