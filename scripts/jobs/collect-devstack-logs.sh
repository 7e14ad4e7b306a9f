#!/usr/bin/env bash
# collect-devstack-logs.sh DEST LOG_DIR: gathers what OpenStack reviewers look for after a
# devstack job, laid out like upstream's logs/ so the usual links work:
#   logs/            devstack's LOGDIR: stack.sh.log and every service (screen-*) log
#   logs/<unit>.txt  the journal of each devstack@* systemd unit (newer devstack logs there)
#   logs/libvirt/    libvirt and qemu instance logs (the appliance VM's console is here)
#   logs/syslog.txt, logs/dmesg.txt
#   etc/<service>/   the services' configuration as devstack wrote it, and tempest.conf
# then renames *.log to *.txt and gzips the large text files (compress_logs).
# AKANDA_CI_ETC_ROOT and AKANDA_CI_VAR_LOG (default /etc and /var/log) exist for tests.
set -euo pipefail

AKANDA_CI_JOBS_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib"
# shellcheck source=scripts/jobs/lib/common.sh
source "$AKANDA_CI_JOBS_LIB/common.sh"

[[ $# -eq 2 ]] || die "usage: collect-devstack-logs.sh DEST LOG_DIR"
DEST=$1
OUT=$2
require_safe_path DEST
require_safe_path OUT
ETC_ROOT=${AKANDA_CI_ETC_ROOT:-/etc}
VAR_LOG=${AKANDA_CI_VAR_LOG:-/var/log}
SERVICES=(keystone glance nova neutron placement cinder akanda astara tempest horizon)

mkdir -p "$OUT/logs" "$OUT/etc"

# Dereference devstack's symlinked "screen-*.log -> screen-*.<date>.log" names: keep the link
# names (what people search for) with the files' content, and drop the dated duplicates.
if [[ -d $DEST/logs ]]; then
  cp -RL -- "$DEST/logs/." "$OUT/logs/"
  find "$OUT/logs" -type f -name '*.20[0-9][0-9]-*.log' -delete
  [[ -f $DEST/devstack/local.conf && ! -f $OUT/local.conf ]] && cp -- "$DEST/devstack/local.conf" "$OUT/local.conf"
else
  log "no devstack logs in $(shown "$DEST/logs"): devstack did not get far enough to write any"
fi

if command -v journalctl >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1; then
  while read -r unit _; do
    [[ $unit =~ ^devstack@[A-Za-z0-9_.-]+\.service$ ]] || continue
    name=${unit#devstack@}
    journalctl --no-pager -o short-precise --unit "$unit" >"$OUT/logs/${name%.service}.txt" 2>/dev/null || true
  done < <(systemctl list-units --all --no-legend --plain 'devstack@*' 2>/dev/null || true)
  journalctl --no-pager -o short-precise >"$OUT/logs/syslog.txt" 2>/dev/null || rm -f "$OUT/logs/syslog.txt"
elif [[ -f $VAR_LOG/syslog ]]; then
  cp -- "$VAR_LOG/syslog" "$OUT/logs/syslog.txt"
fi
dmesg >"$OUT/logs/dmesg.txt" 2>/dev/null || rm -f "$OUT/logs/dmesg.txt"
if [[ -d $VAR_LOG/libvirt ]]; then
  mkdir -p "$OUT/logs/libvirt"
  cp -R -- "$VAR_LOG/libvirt/." "$OUT/logs/libvirt/" 2>/dev/null || true
fi

for service in "${SERVICES[@]}"; do
  if [[ -d $ETC_ROOT/$service ]]; then
    mkdir -p "$OUT/etc/$service"
    # Configuration only: no keys or certificates, even devstack's throwaway ones.
    find "$ETC_ROOT/$service" -type f \( -name '*.conf' -o -name '*.ini' -o -name '*.json' -o -name '*.yaml' \
      -o -name '*.filters' -o -name '*.py' \) -exec cp -- {} "$OUT/etc/$service/" \;
  fi
done
if [[ -f $DEST/tempest/etc/tempest.conf ]]; then
  mkdir -p "$OUT/etc/tempest"
  cp -- "$DEST/tempest/etc/tempest.conf" "$OUT/etc/tempest/"
fi

# Anything a reviewer opens in a browser must be text with a name the browser understands.
find "$OUT/etc" -type f ! -name '*.txt' -exec mv -- {} {}.txt \;
compress_logs "$OUT"
log "devstack logs collected into $(shown "$OUT")"
