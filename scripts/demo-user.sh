#!/usr/bin/env bash
# demo-user.sh: the demo's shared Unix user (visitor), safe with several demos at once.
#
#   scripts/demo-user.sh acquire PID   make sure the user exists, PID (a running demo) holds it
#   scripts/demo-user.sh release PID   PID no longer holds it; the last holder removes it, if
#                                      a demo created it
#
# Each running demo holds the user with a file HOLDERS/PID recording the process's start
# time (so a PID reused by another process is not taken for the demo). A demo that created
# the user leaves a CREATED marker; the user is removed only when no live demo holds it and
# a demo created it (a visitor user that existed before is never removed). Holders whose
# process is gone (a demo killed with SIGKILL) are dropped at each acquire and release.
# Everything happens under flock(1) on one lock file. The state lives in
# DEMO_USER_DIR (default /run/tether-demo, gone at reboot with the demos that held it).
#
# For tests without root: DEMO_USER (visitor), and the commands DEMO_ID, DEMO_USERADD,
# DEMO_USERMOD, DEMO_USERDEL replace id, useradd, usermod and userdel.
set -euo pipefail

user=${DEMO_USER:-visitor}
dir=${DEMO_USER_DIR:-/run/tether-demo}/$user
id_cmd=${DEMO_ID:-id}
useradd_cmd=${DEMO_USERADD:-useradd}
usermod_cmd=${DEMO_USERMOD:-usermod}
userdel_cmd=${DEMO_USERDEL:-userdel}

# start_time PID prints the process's start time in clock ticks since boot (field 22 of
# /proc/PID/stat, read after the command name, which may hold spaces), or nothing.
start_time() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	awk '{print $20}' <<<"$stat"
}

# prune drops holders whose process is gone or is another process now.
prune() {
	local f pid
	for f in "$dir"/holders/*; do
		[ -e "$f" ] || continue
		pid=${f##*/}
		if [ "$(start_time "$pid")" != "$(cat "$f" 2>/dev/null)" ]; then
			rm -f "$f"
		fi
	done
}

holders() { find "$dir/holders" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

acquire() {
	local pid=$1 started
	started=$(start_time "$pid")
	[ -n "$started" ] || { echo "demo-user: process $pid is not running" >&2; return 1; }
	prune
	if ! "$id_cmd" "$user" >/dev/null 2>&1; then
		"$useradd_cmd" -m -s /bin/sh "$user"
		# useradd leaves the password locked ("!"), and sshd without PAM refuses locked
		# accounts even for certificates: "*" is no password, not locked.
		"$usermod_cmd" -p '*' "$user"
		touch "$dir/created"
		echo "(created the Unix user $user for the demo; it is removed when the last demo using it stops)"
	fi
	echo "$started" >"$dir/holders/$pid"
}

release() {
	local pid=$1 n out
	rm -f "$dir/holders/$pid"
	prune
	n=$(holders)
	if [ "$n" -gt 0 ]; then
		[ -e "$dir/created" ] && echo "(the Unix user $user stays: $n other demo(s) still use it)"
		return 0
	fi
	[ -e "$dir/created" ] || return 0
	if ! "$id_cmd" "$user" >/dev/null 2>&1; then
		rm -f "$dir/created" # removed by someone else
		return 0
	fi
	if out=$("$userdel_cmd" -r "$user" 2>&1); then
		rm -f "$dir/created"
		echo "(removed the Unix user $user the demo created)"
	else
		echo "could not remove the Unix user $user the demo created: $out" >&2
		echo "(a process still runs as it; remove it later with: userdel -r $user)" >&2
	fi
}

case "${1:-}" in
acquire | release)
	[[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: $0 acquire|release PID" >&2; exit 2; }
	mkdir -p "$dir/holders"
	chmod 0700 "${dir%/*}" "$dir" 2>/dev/null || true
	exec 9>"$dir/lock"
	flock 9
	"$1" "$2"
	;;
*)
	echo "usage: $0 acquire|release PID" >&2
	exit 2
	;;
esac
