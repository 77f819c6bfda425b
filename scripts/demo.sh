#!/usr/bin/env bash
# make demo: the trusted-clusters guide on this machine, left running for you to try.
#
# A root (root.example.com) and two leaves (leaf-east, leaf-west), each a tetherd with the
# embedded store on 127.0.0.1, joined by the guide's own steps with tetherctl in place of
# tctl; a node in each leaf (node-east: a Tether node agent joined with a node token;
# node-west: OpenSSH's sshd trusting leaf-west's openssh CA); Alice signed up for real. The demo
# then runs every command it is about to print, exactly as printed, in a clean `bash -c`
# (no variable or function of this script), prints them, and stays up until Ctrl-C or
# SIGTERM, when it stops every process it started and removes its temporary directory and,
# when no other demo still uses it, the Unix user a demo created (scripts/demo-user.sh).
#
# DEMO_EXIT_AFTER_CHECKS=1 exits after the checks instead of staying up: status 0 when every
# check passed (CI and scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=$repo/bin
export PATH=$bin:$PATH
DEMO_EXIT_AFTER_CHECKS=${DEMO_EXIT_AFTER_CHECKS:-0}

for tool in "$bin/tetherd" "$bin/tetherctl" "$bin/tether"; do
	[ -x "$tool" ] || { echo "$tool is missing: run make demo (it builds the binaries first)" >&2; exit 1; }
done
sshd_bin=$(command -v sshd || echo /usr/sbin/sshd)
for tool in "$sshd_bin" ssh ssh-keygen curl python3; do
	command -v "$tool" >/dev/null || { echo "$tool is missing: run make demo, or scripts/install-tools.sh as root" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tether-demo.XXXXXX)
pids=()
held_user=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	echo
	echo "Stopping the demo: ${#pids[@]} processes, $work"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
	# The Unix user is shared by every demo running on this machine: the last one to stop
	# removes it, and only if a demo created it (scripts/demo-user.sh).
	if [ -n "$held_user" ]; then
		DEMO_USER=$held_user "$repo/scripts/demo-user.sh" release $$ || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# The login alice uses on the nodes. The node agent and sshd switch to the login's Unix
# user, which only root can do: as root the demo creates the guide's `visitor` user (the
# last demo running removes it at exit); otherwise every login is the current user, the
# only one an unprivileged node agent or sshd can serve.
if [ "$(id -u)" -eq 0 ]; then
	login=visitor
	# Created when missing (password "*": sshd without PAM refuses locked accounts even
	# for certificates), held by this demo's PID, removed by the last demo to stop.
	DEMO_USER=visitor "$repo/scripts/demo-user.sh" acquire $$
	held_user=visitor
	# passwd -S says L for "*" too: read the hash field ("!" is locked).
	if [[ "$(getent shadow visitor | cut -d: -f2)" == '!'* ]]; then
		echo "WARNING: the existing Unix user visitor is locked; sshd (node-west) refuses locked accounts" >&2
		echo "without PAM, even with a certificate. Unlock it without a password: usermod -p '*' visitor" >&2
	fi
	mkdir -p /run/sshd # sshd's privilege separation directory
else
	login=$(id -un)
	echo "NOTE: not running as root, so the demo cannot create the Unix user visitor, and the node"
	echo "agent and sshd (running as $login) can only log users in as $login. The login is $login"
	echo "everywhere below; the leaves' visitor role allows it besides visitor."
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start NAME DIR [EXTRA]: runs tetherd for cluster NAME on a free 127.0.0.1 port, writes the
# port to DIR/port. It runs in this shell (not a subshell) so cleanup can stop and reap it.
start() {
	local name=$1 dir=$work/$2 extra=${3:-} port
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		cat > "$dir/tether.yaml" <<EOF
cluster_name: $name
data_dir: $dir/data
proxy:
  web_listen_addr: 127.0.0.1:$port
  public_addr: 127.0.0.1:$port
$extra
EOF
		"$bin/tetherd" start -c "$dir/tether.yaml" > "$dir/tetherd.log" 2>&1 &
		local pid=$!
		for _ in $(seq 1 300); do
			if [ -f "$dir/data/admin-identity.pem" ] && curl -sk --max-time 1 "https://127.0.0.1:$port/webapi/ping" > /dev/null 2>&1; then
				pids+=("$pid")
				echo "$port" > "$dir/port"
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	echo "tetherd for $name did not start; its log:" >&2
	cat "$dir/tetherd.log" >&2
	return 1
}

# until_ok SECONDS WHAT CMD...: polls CMD until it succeeds, or fails the demo saying WHAT.
until_ok() {
	local secs=$1 what=$2
	shift 2
	for _ in $(seq 1 $((secs * 5))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "timed out after ${secs}s waiting for $what" >&2
	return 1
}

root=root.example.com
leaves=(leaf-east leaf-west)
step "Starting the root $root and the leaves ${leaves[*]} (embedded store, no Redis)"
start $root root
root_port=$(cat "$work/root/port")
root_ca=$work/root-ca.pem
cat "$work"/root/data/ca/tls/*.crt > "$root_ca" # what a leaf pins (root_ca_file) and alice's --ca-file
for leaf in "${leaves[@]}"; do
	start "$leaf" "$leaf" "root_ca_file: $root_ca"
	echo "$leaf on https://127.0.0.1:$(cat "$work/$leaf/port")"
done
echo "$root on https://127.0.0.1:$root_port"
# The admin commands, as a root or leaf admin types them on the cluster's host.
ctl() { local c=$1; shift; "$bin/tetherctl" --data-dir "$work/$c/data" "$@"; }
rootctl() { ctl root "$@"; }

step "Step 1/6 (each leaf): the visitor role, and stage-access for Alice's full-access"
visitor_logins="[visitor]"
[ "$login" = visitor ] || visitor_logins="[visitor, $login]"
cat > "$work/leaf-roles.yaml" <<EOF
kind: role
version: v5
metadata:
  name: visitor
spec:
  allow:
    logins: $visitor_logins
    node_labels:
      '*': '*'
---
kind: role
version: v5
metadata:
  name: stage-access
spec:
  allow:
    logins: ['{{internal.logins}}']
    node_labels: {env: stage}
  deny:
    logins: [root]
EOF
for leaf in "${leaves[@]}"; do
	printf '$ tetherctl --data-dir %s create leaf-roles.yaml\n' "$work/$leaf/data"
	ctl "$leaf" create "$work/leaf-roles.yaml"
done

step "Step 2/6 (root): Alice, with the visitor login; full-access is hers besides the preset access"
alice_logins=visitor,ubuntu
[ "$login" = visitor ] || alice_logins=visitor,ubuntu,$login
cat > "$work/root-roles.yaml" <<'EOF'
kind: role
version: v5
metadata:
  name: full-access
spec:
  allow:
    logins: ['{{internal.logins}}']
    node_labels:
      '*': '*'
---
kind: role
version: v5
metadata:
  name: demo-cluster-access
spec:
  allow:
    cluster_labels:
      'env': 'demo'
EOF
run rootctl create "$work/root-roles.yaml"
printf '$ tetherctl users add alice --roles=access,full-access,demo-cluster-access --logins=%s\n' "$alice_logins"
alice_added=$(rootctl users add alice --roles=access,full-access,demo-cluster-access --logins="$alice_logins")
echo "$alice_added"
alice_signup=$(echo "$alice_added" | awk '/tether users signup/{print $NF; exit}')
[ -n "$alice_signup" ] || { echo "tetherctl users add printed no sign-up token" >&2; exit 1; }

step "Step 3/6 (root): the invitation token, and the tunnel address from /webapi/ping"
printf '$ tetherctl tokens add --type=trusted_cluster --ttl=5m\n'
added=$(rootctl tokens add --type=trusted_cluster --ttl=5m)
echo "$added"
token=$(echo "$added" | sed -n 's/^The cluster invite token: //p')
printf '$ curl --cacert %s https://127.0.0.1:%s/webapi/ping\n' "$root_ca" "$root_port"
ping=$(curl -s --cacert "$root_ca" "https://127.0.0.1:$root_port/webapi/ping")
echo "$ping"
tunnel_addr=$(echo "$ping" | grep -o '"ssh_tunnel_public_addr":"[^"]*"' | cut -d'"' -f4)
[ -n "$tunnel_addr" ] || { echo "/webapi/ping advertised no ssh_tunnel_public_addr" >&2; exit 1; }

step "Step 4/6 (each leaf): create the trusted cluster, role_map access -> visitor, full-access -> stage-access"
cat > "$work/trusted_cluster.yaml" <<EOF
kind: trusted_cluster
version: v2
metadata:
  name: $root
spec:
  enabled: true
  token: $token
  tunnel_addr: $tunnel_addr
  web_proxy_addr: 127.0.0.1:$root_port
  role_map:
    - remote: "access"
      local: ["visitor"]
    - remote: "full-access"
      local: ["stage-access"]
EOF
cat "$work/trusted_cluster.yaml"
for leaf in "${leaves[@]}"; do
	printf '$ tetherctl --data-dir %s create trusted_cluster.yaml\n' "$work/$leaf/data"
	ctl "$leaf" create "$work/trusted_cluster.yaml"
done
for leaf in "${leaves[@]}"; do
	until_ok 60 "$leaf's tunnel to the root" bash -c "'$bin/tetherctl' --data-dir '$work/root/data' get rc/$leaf | grep -q 'connection: online'"
done

step "Step 5/6 (root): label the leaves env=demo (Alice's demo-cluster-access role sees env=demo)"
for leaf in "${leaves[@]}"; do
	run rootctl update "rc/$leaf" --set-labels=env=demo
done
run rootctl get rc --format text

step "A node in each leaf: node-east is a Tether node agent (env=stage), node-west is OpenSSH's sshd (env=prod)"
# node-east joins leaf-east with a node token, as tetherctl nodes add prints.
printf '$ tetherctl --data-dir %s nodes add --name=node-east --labels=env=stage\n' "$work/leaf-east/data"
node_added=$(ctl leaf-east nodes add --name=node-east --labels=env=stage)
echo "$node_added"
node_token=$(echo "$node_added" | awk '/^The invite token: /{print $4; exit}')
leaf_east_ca=$(echo "$node_added" | awk '/ca_pin_file:/{print $2; exit}')
mkdir -p "$work/node-east"
for _ in 1 2 3 4 5; do
	node_port=$(free_port)
	cat > "$work/node-east/tether.yaml" <<EOF
data_dir: $work/node-east/data
node:
  enabled: true
  name: node-east
  listen_addr: 127.0.0.1:$node_port
  public_addr: 127.0.0.1:$node_port
  auth_server: 127.0.0.1:$(cat "$work/leaf-east/port")
  token: $node_token
  ca_pin_file: $leaf_east_ca
EOF
	"$bin/tetherd" start -c "$work/node-east/tether.yaml" > "$work/node-east/tetherd.log" 2>&1 &
	node_pid=$!
	for _ in $(seq 1 300); do
		ctl leaf-east get node/node-east 2>/dev/null | grep -q 'connection: online' && break
		kill -0 "$node_pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$node_pid" 2>/dev/null; then pids+=("$node_pid"); break; fi
	wait "$node_pid" 2>/dev/null || true
done
kill -0 "$node_pid" 2>/dev/null || { echo "the node agent node-east did not start; its log:" >&2; cat "$work/node-east/tetherd.log" >&2; exit 1; }

# node-west: sshd with its own host key, certified by leaf-west's host CA, trusting
# leaf-west's openssh CA, which signs only the short-lived certificate the leaf presents
# after its ssh.session decision (never the user CA: users' login certificates would
# open the node directly).
dir=$work/node-west
mkdir -p "$dir"
ssh-keygen -q -t ed25519 -N '' -C node-west -f "$dir/ssh_host_ed25519_key"
printf '$ tetherctl --data-dir %s auth sign --host=node-west --pub=ssh_host_ed25519_key.pub > ssh_host_ed25519_key-cert.pub\n' "$work/leaf-west/data"
ctl leaf-west auth sign --host=node-west --pub="$dir/ssh_host_ed25519_key.pub" > "$dir/ssh_host_ed25519_key-cert.pub"
printf '$ tetherctl --data-dir %s auth export --type=openssh > leaf-west-openssh-ca.pub\n' "$work/leaf-west/data"
ctl leaf-west auth export --type=openssh > "$dir/leaf-west-openssh-ca.pub"
cat "$dir/leaf-west-openssh-ca.pub"
sshd_up() { # sshd_up ADDR: the server answers with an SSH banner
	python3 - "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=2)
s.settimeout(2)
sys.exit(0 if s.recv(8).startswith(b"SSH-2.0-") else 1)
EOF
}
for _ in 1 2 3 4 5; do
	sshd_port=$(free_port)
	cat > "$dir/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $dir/ssh_host_ed25519_key
HostCertificate $dir/ssh_host_ed25519_key-cert.pub
TrustedUserCAKeys $dir/leaf-west-openssh-ca.pub
AuthorizedKeysFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
PidFile none
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
	"$sshd_bin" -D -e -f "$dir/sshd_config" > "$dir/sshd.log" 2>&1 &
	sshd_pid=$!
	for _ in $(seq 1 50); do
		sshd_up "127.0.0.1:$sshd_port" 2>/dev/null && break
		kill -0 "$sshd_pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$sshd_pid" 2>/dev/null; then pids+=("$sshd_pid"); break; fi
	wait "$sshd_pid" 2>/dev/null || true
done
kill -0 "$sshd_pid" 2>/dev/null || { echo "sshd for node-west did not start; its log:" >&2; cat "$dir/sshd.log" >&2; exit 1; }
echo "sshd for node-west on 127.0.0.1:$sshd_port (config $dir/sshd_config)"
printf '$ tetherctl --data-dir %s nodes add --name=node-west --addr=127.0.0.1:%s --labels=env=prod\n' "$work/leaf-west/data" "$sshd_port"
ctl leaf-west nodes add --name=node-west --addr="127.0.0.1:$sshd_port" --labels=env=prod
for leaf in "${leaves[@]}"; do
	printf '$ tetherctl --data-dir %s get node --format text\n' "$work/$leaf/data"
	ctl "$leaf" get node --format text
done

step "Alice signs up at the root with tether (her password and one-time code; the admin never sees them)"
alice_home=$work/alice
alice_pw='correct horse battery staple'
printf '$ tether users signup --proxy=127.0.0.1:%s --ca-file=%s %s\n' "$root_port" "$root_ca" "$alice_signup"
# The demo answers the prompts itself; scripts/totp.py stands in for an authenticator app.
coproc SIGNUP { TETHER_HOME=$alice_home "$bin/tether" users signup --proxy="127.0.0.1:$root_port" --ca-file="$root_ca" "$alice_signup" 2>&1; }
# bash unsets SIGNUP_PID as soon as the coprocess ends
# shellcheck disable=SC2153 # coproc sets it
signup_pid=$SIGNUP_PID
printf '%s\n%s\n' "$alice_pw" "$alice_pw" >&"${SIGNUP[1]}"
alice_secret=""
while IFS= read -r line <&"${SIGNUP[0]}"; do
	echo "$line"
	case "$line" in *"Secret: "*) alice_secret=${line##*Secret: }; break ;; esac
done
[ -n "$alice_secret" ] || { echo "tether users signup printed no secret" >&2; exit 1; }
python3 scripts/totp.py "$alice_secret" >&"${SIGNUP[1]}"
cat <&"${SIGNUP[0]}"
wait "$signup_pid"

# The commands to try. Each runs below exactly as printed, in `bash -c` with a clean
# environment after the printed export line, so a command that works only inside this
# script fails the demo.
env_line="export PATH=\"$bin:\$PATH\" TETHER_HOME=$alice_home"
ssh_config=$work/ssh_config
login_cmd="printf '%s\\n' '$alice_pw' \"\$(python3 $repo/scripts/totp.py --next $alice_secret)\" | tether login --proxy=127.0.0.1:$root_port --ca-file=$root_ca --user=alice"
T=$'\t'
# kind<TAB>command<TAB>what a denial must say. Kinds: ok (exit 0), deny (non-zero exit and
# that text in the output), ok~ and deny~ (the same, tried again for up to 10 s: what a
# lock changes reaches the leaves within seconds, and a person typing the next command
# takes that long anyway), and # (a comment printed above the next commands, not run).
checks=(
	"#${T}sign in again (interactively: tether login --proxy=127.0.0.1:$root_port --ca-file=$root_ca --user=alice)"
	"ok${T}$login_cmd"
	"ok${T}tether status"
	"ok${T}tether clusters"
	"ok${T}tether ls --cluster=leaf-east"
	"ok${T}tether ssh --cluster=leaf-east $login@node-east uname -a"
	"#${T}without --cluster, tether finds the node among the clusters Alice may see:"
	"ok${T}tether ssh $login@node-east uname -a"
	"#${T}node-west is OpenSSH's sshd; leave out the command for an interactive shell:"
	"ok${T}tether ssh --cluster=leaf-west $login@node-west uname -a"
	"#${T}OpenSSH's own client, with tether proxy ssh as its ProxyCommand (tether config):"
	"ok${T}tether config > $ssh_config"
	"ok${T}ssh -F $ssh_config $login@node-west.leaf-west uname -a"
	"ok${T}ssh -F $ssh_config $login@node-east.leaf-east 'id -un'"
	"#${T}or with the root's proxy as OpenSSH's jump host (ProxyJump, as with Teleport's proxy):"
	"ok${T}ssh -F $ssh_config -J 127.0.0.1 $login@node-west.leaf-west hostname"
	"#${T}copy files: tether scp (sftp, as the login on the node), or OpenSSH's scp with the same config:"
	"ok${T}tether scp $login@node-east:/etc/os-release $work/os-release-from-node-east"
	"ok${T}scp -F $ssh_config $login@node-west.leaf-west:/etc/os-release $work/os-release-from-node-west"
	"#${T}node lists for scripts: names, or tsh-style JSON (-f json) and YAML (-f yaml):"
	"ok${T}tether ls --cluster=leaf-west -f names"
	"#${T}switch to a leaf without the password, as tsh login LEAF (certificates reissued; they end with the sign-in):"
	"ok${T}tether login leaf-east"
	"ok${T}tether ls"
	"ok${T}tether login $root"
	"#${T}denied: Alice's full-access maps to stage-access, which reaches env=stage only, and"
	"#${T}visitor does not allow the login ubuntu; node-west is env=prod:"
	"deny${T}tether ssh --cluster=leaf-west ubuntu@node-west uname -a${T}not authorized"
	"#${T}denied: root is not one of Alice's logins (and stage-access denies it):"
	"deny${T}tether ssh --cluster=leaf-east root@node-east uname -a${T}not authorized"
	"#${T}OpenSSH is refused at sign-in, as sshd refuses a login; the reason is the banner it prints:"
	"deny${T}ssh -F $ssh_config -N ubuntu@node-west.leaf-west${T}not authorized"
	"#${T}admin, on the clusters' host: the leaves as the root sees them, leaf-west's nodes"
	"ok${T}tetherctl --data-dir $work/root/data get rc --format text"
	"ok${T}tetherctl --data-dir $work/leaf-west/data get node --format text"
	"#${T}a lock at the root (tctl lock) denies Alice at once and reaches every leaf within seconds,"
	"#${T}as stolen-laptop@$root, which ends her live sessions there too:"
	"ok${T}tetherctl --data-dir $work/root/data lock --user=alice --name=stolen-laptop --message='laptop reported stolen' --ttl=1h"
	"deny~${T}tether ssh --cluster=leaf-east $login@node-east true${T}laptop reported stolen"
	"ok~${T}tetherctl --data-dir $work/leaf-east/data get lock/stolen-laptop@$root --format text"
	"ok${T}tetherctl --data-dir $work/root/data rm lock/stolen-laptop"
	"ok~${T}tether ssh --cluster=leaf-east $login@node-east true"
	"#${T}the bundle leaf-east decides with, at the revision its decision log records (opa eval -b reads it):"
	"ok${T}tetherctl --data-dir $work/leaf-east/data policy export -o $work/leaf-east-policy.tar.gz"
)
clean_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
failed=0
ran=0
run_once() {
	local cmd=$1
	set +e
	out=$(cd / && env -i HOME="$HOME" USER="$(id -un)" LANG=C.UTF-8 PATH="$clean_path" \
		timeout 120 bash -c "$env_line"$'\n'"$cmd" 2>&1 </dev/null)
	rc=$?
	set -e
}
run_check() {
	local kind=$1 cmd=$2 want=$3 out rc tries=1 i
	ran=$((ran + 1))
	printf '\n$ %s\n' "$cmd"
	case "$kind" in *~) tries=20 ;; esac
	for ((i = 1; i <= tries; i++)); do
		run_once "$cmd"
		case "$kind" in
		ok*) [ "$rc" -eq 0 ] && break ;;
		deny*) [ "$rc" -ne 0 ] && [[ "$out" == *"$want"* ]] && break ;;
		esac
		[ "$i" -eq "$tries" ] || sleep 0.5
	done
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  /'
	case "$kind" in
	ok*) [ "$rc" -eq 0 ] && { echo "  [ok]"; return; } ;;
	deny*) [ "$rc" -ne 0 ] && [[ "$out" == *"$want"* ]] && { echo "  [ok: denied as expected]"; return; } ;;
	esac
	echo "  [FAILED: exit $rc${want:+, expected output containing \"$want\"}]"
	failed=$((failed + 1))
}

step "Checking every command the demo prints, as printed, in a clean shell"
printf '$ %s\n' "$env_line"
echo "(the login waits for the next 30-second one-time code: each code signs in once)"
for c in "${checks[@]}"; do
	IFS=$'\t' read -r kind cmd want <<< "$c"
	[ "$kind" = "#" ] || run_check "$kind" "$cmd" "$want"
done

step "Try it yourself (in another shell; every command below was just run as printed)"
cat <<EOF
The clusters (admin: tetherctl --data-dir DIR, on this host):
  root       $root   https://127.0.0.1:$root_port   $work/root/data
  leaf-east  tunnel to the root   https://127.0.0.1:$(cat "$work/leaf-east/port")   $work/leaf-east/data   node-east: Tether node agent, env=stage
  leaf-west  tunnel to the root   https://127.0.0.1:$(cat "$work/leaf-west/port")   $work/leaf-west/data   node-west: OpenSSH sshd on 127.0.0.1:$sshd_port, env=prod
Logs: $work/*/tetherd.log, $work/node-west/sshd.log

Alice is signed in already (profile $alice_home). Her password is '$alice_pw';
her one-time code is what this prints (it stands in for an authenticator app):
  python3 $repo/scripts/totp.py $alice_secret

  $env_line
EOF
prev=""
for c in "${checks[@]}"; do
	IFS=$'\t' read -r kind cmd want <<< "$c"
	case "$kind" in
	"#")
		[ "$prev" = "#" ] || echo
		printf '  # %s\n' "$cmd"
		;;
	*)
		printf '  %s\n' "$cmd"
		;;
	esac
	prev=$kind
done
if [ "$failed" -gt 0 ]; then
	echo
	echo "DEMO FAILED: $failed of $ran printed commands did not work as printed (see above)." >&2
	exit 1
fi
echo
echo "All $ran printed commands worked as printed."
if [ "$DEMO_EXIT_AFTER_CHECKS" = 1 ]; then
	exit 0
fi
echo "The demo stays up until you press Ctrl-C (or send SIGTERM); it then stops everything and removes $work."
while true; do
	sleep 3600 &
	wait $! || true
done
