#!/usr/bin/env bash
# tox.sh ENV: the pep8 and unit jobs. Runs `tox -e ENV` in the checked-out project (the current
# directory, where the agent starts every job), then publishes tox's logs and the test results
# (subunit stream, testr_results.html, skipped tests) into $AKANDA_CI_LOG_DIR.
set -euo pipefail

AKANDA_CI_JOBS_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

usage() {
  echo "usage: tox.sh ENV   (e.g. pep8, py27)" >&2
  exit 2
}

[[ $# -eq 1 ]] || usage
TOX_ENV=$1
[[ $TOX_ENV =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "not a tox environment name: $(shown "$TOX_ENV")"
require_safe_path AKANDA_CI_LOG_DIR
require_match AKANDA_CI_TIMEOUT '^[0-9]{1,6}$' 'a number of seconds'
[[ -f tox.ini ]] || die "no tox.ini in $(shown "$PWD"): is this the project checkout?"

mkdir -p "$AKANDA_CI_LOG_DIR"
commands_init "$AKANDA_CI_LOG_DIR/commands.txt"

# Real nodes reach PyPI and the distribution mirrors; a node image normally has tox already.
# tox 3 with virtualenv < 20.22 first: the last versions that still create Python 2.7
# environments (py27) and read Kilo-era tox.ini files; a venv, as Ubuntu 24.04's pip refuses
# to install into the system (PEP 668). The distribution's tox is the fallback.
TOX_VENV=${AKANDA_CI_TOX_VENV:-$HOME/.cache/akanda-ci-tox}
ensure_tox() {
  command -v tox >/dev/null 2>&1 && return 0
  log "tox is not installed; installing it"
  if command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1; then
    if run python3 -m venv "$TOX_VENV" && run "$TOX_VENV/bin/pip" install -q 'tox<4' 'virtualenv<20.22'; then
      export PATH="$TOX_VENV/bin:$PATH"
      return 0
    fi
  fi
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q tox && command -v tox >/dev/null 2>&1 && return 0
  fi
  die "tox is not installed and could not be installed (needs python3 with venv and PyPI, or apt-get as root)"
}

# py27*: tox needs a python2.7 interpreter. Ubuntu 20.04 and 22.04 have the package (universe);
# Ubuntu 24.04, the default node AMI, has none, and then the job stops here with exit status 3
# and says why, instead of tox's InterpreterNotFound deep in its output (docs/jobs.md, "py27").
# The default config makes py27 non-voting for that reason, so no review gets -1 from it.
PYTHON27_PACKAGES=(python2.7 python2.7-dev)
ensure_python27() {
  [[ $TOX_ENV == py27* ]] || return 0
  command -v python2.7 >/dev/null 2>&1 && return 0
  log "python2.7 is not installed; installing ${PYTHON27_PACKAGES[*]}"
  if command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    run env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
      --no-install-recommends "${PYTHON27_PACKAGES[@]}" || true
    command -v python2.7 >/dev/null 2>&1 && return 0
  fi
  printf 'akanda-ci: error: tox -e %s needs python2.7, which this node lacks and apt-get could not install %s\n' \
    "$(shown "$TOX_ENV")" '(Ubuntu 24.04 has no python2.7 package: see docs/jobs.md, "py27 and Python 2.7")' >&2
  log "FAILED: no python2.7 on this node (an environment problem, not the change)"
  exit 3
}

publish() {
  local dest="$AKANDA_CI_LOG_DIR/tox/$TOX_ENV"
  mkdir -p "$dest"
  if [[ -d .tox/$TOX_ENV/log ]]; then
    find ".tox/$TOX_ENV/log" -mindepth 1 -maxdepth 1 ! -name '.lock' -exec cp -R -- {} "$dest/" \;
  else
    log "tox wrote no logs in .tox/$TOX_ENV/log"
  fi
  local stream
  stream=$(mktemp)
  if last_subunit_stream "$PWD" "$stream"; then
    publish_subunit "$stream" "$AKANDA_CI_LOG_DIR"
  else
    log "no stestr or testr results in this project (style jobs have none)"
  fi
  rm -f "$stream"
  compress_logs "$AKANDA_CI_LOG_DIR"
}

ensure_tox
ensure_python27
# The agent stops a job with SIGTERM to its process group: publish what tox left, then stop.
trap 'stop_limited; publish; log "FAILED: tox -e $TOX_ENV was stopped (SIGTERM)"; exit 143' TERM INT
status=0
run_limited tox -e "$TOX_ENV" || status=$?
publish
case $status in
  0) log "tox -e $TOX_ENV passed" ;;
  124 | 137) log "FAILED: tox -e $TOX_ENV did not finish within the job's time limit" ;;
  *) log "FAILED: tox -e $TOX_ENV exited $status" ;;
esac
exit "$status"
