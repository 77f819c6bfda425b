#!/usr/bin/env bash
# The main job: a root and a leaf cluster on this machine, joined by trust with the
# trusted-clusters guide's own steps (tetherctl in place of tctl), then the guide's access
# questions answered by the leaf's policy, before and after the leaf disables the trust.
#
# The leaf's reverse tunnel comes up (get rc shows it online over QUIC) and goes down when
# the trust is disabled. What is not here yet: `tether ssh` through it to a node (later
# issues); the decisions are asked of the leaf's policy offline instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
export PATH=$bin:$PATH
work=$(mktemp -d)
pids=()
created_visitor=""
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
	if [ -n "$created_visitor" ]; then userdel -r visitor 2>/dev/null || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# start NAME DIR [EXTRA]: runs tetherd for cluster NAME on a free 127.0.0.1 port, writes the
# port to DIR/port. It runs in this shell (not a subshell) so cleanup can stop and reap it.
start() {
	local name=$1 dir=$work/$2 extra=${3:-} port
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 30000))
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
		for _ in $(seq 1 100); do
			if [ -f "$dir/data/admin-identity.pem" ] && curl -sk --max-time 1 "https://127.0.0.1:$port/webapi/ping" > /dev/null 2>&1; then
				pids+=("$pid")
				echo "$port" > "$dir/port"
				return 0
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$pid" 2>/dev/null || true
	done
	echo "tetherd for $name did not start; its log:" >&2
	cat "$dir/tetherd.log" >&2
	return 1
}

root=rootcluster.example.com
leaf=leafcluster.example.com
start $root root
root_port=$(cat "$work/root/port")
root_tls_ca=$(ls "$work"/root/data/ca/tls/*.crt | head -n 1)
start $leaf leaf "root_ca_file: $root_tls_ca"
leaf_port=$(cat "$work/leaf/port")
rootctl() { "$bin/tetherctl" --data-dir "$work/root/data" "$@"; }
leafctl() { "$bin/tetherctl" --data-dir "$work/leaf/data" "$@"; }
echo "root $root on https://127.0.0.1:$root_port, leaf $leaf on https://127.0.0.1:$leaf_port"

step "Step 1/6 (leaf): the visitor role, and stage-access for Alice's full-access"
cat > "$work/visitor.yaml" <<'EOF'
kind: role
version: v5
metadata:
  name: visitor
spec:
  allow:
    logins: [visitor]
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
run leafctl create "$work/visitor.yaml"

step "Step 2/6 (root): users with the visitor login (access is a preset role; full-access is Alice's)"
run rootctl get role/access
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
EOF
run rootctl create "$work/root-roles.yaml"
run rootctl users add myuser --roles access --logins visitor,ubuntu,root
printf '$ rootctl users add alice --roles full-access --logins visitor\n'
alice_added=$(rootctl users add alice --roles full-access --logins visitor)
echo "$alice_added"
alice_signup=$(echo "$alice_added" | awk '/tether users signup/{print $NF; exit}')
run rootctl get user/myuser

step "Step 3/6 (root): the invitation token, and the addresses for trusted_cluster.yaml"
printf '$ rootctl tokens add --type=trusted_cluster --ttl=5m\n'
added=$(rootctl tokens add --type=trusted_cluster --ttl=5m)
echo "$added"
token=$(echo "$added" | sed -n 's/^The cluster invite token: //p')
run rootctl tokens ls
printf '$ curl https://PROXY/webapi/ping | jq .proxy.ssh.public_addr\n'
curl -sk "https://127.0.0.1:$root_port/webapi/ping"
echo
tunnel_addr=$(curl -sk "https://127.0.0.1:$root_port/webapi/ping" | grep -o '"ssh_tunnel_public_addr":"[^"]*"' | cut -d'"' -f4)

step "Step 4/6 (leaf): create the trusted cluster"
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
run leafctl create "$work/trusted_cluster.yaml"
# The leaf dials out to the root's tunnel (QUIC, SSH over TCP as fallback).
for _ in $(seq 1 100); do
	rootctl get rc | grep -q 'connection: online' && break
	sleep 0.1
done
run rootctl get rc
run rootctl get rc --format text
run leafctl status

step "Step 5/6 (root): label the leaf; only root admins can"
run rootctl update rc/$leaf --set-labels=env=demo
cat > "$work/demo-cluster-access.yaml" <<'EOF'
kind: role
version: v5
metadata:
  name: demo-cluster-access
spec:
  allow:
    cluster_labels:
      'env': 'demo'
EOF
run rootctl create "$work/demo-cluster-access.yaml"
run rootctl get rc

step "Alice signs in at the root with tether (her password and one-time code; the admin never sees them)"
export TETHER_HOME=$work/alice-home
alice_pw='correct horse battery staple'
printf '$ tether users signup --proxy=127.0.0.1:%s --ca-file=%s %s\n' "$root_port" "$root_tls_ca" "$alice_signup"
# The demo answers the prompts itself; scripts/totp.py stands in for an authenticator app.
coproc SIGNUP { "$bin/tether" users signup --proxy=127.0.0.1:$root_port --ca-file="$root_tls_ca" "$alice_signup" 2>&1; }
signup_pid=$SIGNUP_PID # bash unsets SIGNUP_PID as soon as the coprocess ends
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
echo
# tether_login: a code is accepted once, so each sign-in waits for the next 30-second code.
tether_login() {
	echo "(waiting for the next one-time code)"
	local code
	code=$(python3 scripts/totp.py --next "$alice_secret")
	printf '$ tether login --proxy=127.0.0.1:%s --ca-file=%s --user=alice\n' "$root_port" "$root_tls_ca"
	printf '%s\n%s\n' "$alice_pw" "$code" | "$bin/tether" login --proxy=127.0.0.1:$root_port --ca-file="$root_tls_ca" --user=alice
}
tether_login
run tether status
echo "# The leaf is labelled env=demo and none of Alice's roles has cluster_labels: she does not see it."
run tether clusters
run rootctl users update alice --set-roles full-access,demo-cluster-access
tether_login
run tether clusters

step "A Tether node agent joins the leaf; Alice reaches it through the root and the leaf's tunnel"
# The node drops privileges to the login: the guide's visitor login must exist on this host.
if ! id visitor >/dev/null 2>&1; then
	useradd -m visitor && created_visitor=1 && echo "(created the Unix user visitor for the demo; removed at the end)"
fi
printf '$ leafctl nodes add --name=mongodb-stage --labels=env=stage\n'
node_added=$(leafctl nodes add --name=mongodb-stage --labels=env=stage)
echo "$node_added" | head -n 2
node_token=$(echo "$node_added" | awk '/^The invite token: /{print $4; exit}')
leaf_tls_ca=$(ls "$work"/leaf/data/ca/tls/*.crt | head -n 1)
mkdir -p "$work/node"
for _ in 1 2 3 4 5; do
	node_port=$((20000 + RANDOM % 30000))
	cat > "$work/node/tether.yaml" <<EOF
data_dir: $work/node/data
node:
  enabled: true
  name: mongodb-stage
  labels: {env: stage}
  listen_addr: 127.0.0.1:$node_port
  public_addr: 127.0.0.1:$node_port
  auth_server: 127.0.0.1:$leaf_port
  token: $node_token
  ca_pin_file: $leaf_tls_ca
EOF
	"$bin/tetherd" start -c "$work/node/tether.yaml" > "$work/node/tetherd.log" 2>&1 &
	node_pid=$!
	for _ in $(seq 1 100); do
		leafctl get node/mongodb-stage 2>/dev/null | grep -q 'online' && break
		kill -0 "$node_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$node_pid" 2>/dev/null; then pids+=("$node_pid"); break; fi
done
run leafctl get node --format text
run tether ssh --cluster=$leaf visitor@mongodb-stage 'echo "hello from $(hostname) as $(id -un)"'
echo "# Alice's full-access maps to stage-access on the leaf, which only reaches env=stage: as root she is denied."
run tether ssh --cluster=$leaf root@mongodb-stage true || true
echo "# The same node through OpenSSH, with tether as its ProxyCommand:"
tether config > "$work/ssh_config"
run ssh -F "$work/ssh_config" -o BatchMode=yes visitor@mongodb-stage.$leaf 'id -un'

step "Step 6/6 (leaf): the guide's access questions, asked of the leaf's policy"
leafctl get role > "$work/leaf-resources.yaml"
echo "---" >> "$work/leaf-resources.yaml"
leafctl get trusted_cluster >> "$work/leaf-resources.yaml"
echo "---" >> "$work/leaf-resources.yaml"
leafctl get cas >> "$work/leaf-resources.yaml"
# The root's user CA as the leaf stored it: its fingerprint is what a root-signed
# certificate's signature resolves to.
root_cas=$(rootctl get cas)
root_user_key=$(echo "$root_cas" | awk '/^kind:/{k=""} /type: user/{k="user"} k=="user" && /public_key:/{sub(/.*public_key: */, ""); print; exit}')
fingerprint=$(ssh-keygen -lf <(echo "$root_user_key") | awk '{print $2}')
ask() { # ask USER ROLE NODE ENV
	cat > "$work/input.json" <<EOF
{"action": "ssh.session", "cluster": "$leaf", "now": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "cert": {"type": "user", "signing_ca": {"cluster": "$root", "fingerprint": "$fingerprint"},
          "username": "$1", "principals": ["visitor", "ubuntu", "root"], "roles": ["$2"],
          "traits": {"logins": ["visitor", "ubuntu", "root"]},
          "valid_after": "$(date -u -d '-1 minute' +%Y-%m-%dT%H:%M:%SZ)", "valid_before": "$(date -u -d '+12 hours' +%Y-%m-%dT%H:%M:%SZ)"},
 "login": "visitor", "node": {"name": "$3", "labels": {"env": "$4"}}}
EOF
	printf '$ tetherctl policy eval --cluster %s -r leaf-resources.yaml -i input.json   # %s (%s) as visitor@%s\n' "$leaf" "$1" "$2" "$3"
	"$bin/tetherctl" policy eval --cluster $leaf -r "$work/leaf-resources.yaml" -i "$work/input.json"
}
ask myuser access ip-172-3-2-205 prod
ask alice full-access mongodb-stage stage
ask alice full-access mongodb-prod prod

step "Temporarily disable the trust (leaf): root-signed certificates stop working at once"
leafctl get trusted_cluster/$root --with-secrets | sed 's/enabled: true/enabled: false/' > "$work/tc-disabled.yaml"
run leafctl create --force "$work/tc-disabled.yaml"
for _ in $(seq 1 50); do
	rootctl get rc | grep -q 'connection: offline' && break
	sleep 0.1
done
run rootctl get rc --format text
leafctl get role > "$work/leaf-resources.yaml"
echo "---" >> "$work/leaf-resources.yaml"
leafctl get trusted_cluster >> "$work/leaf-resources.yaml"
echo "---" >> "$work/leaf-resources.yaml"
leafctl get cas >> "$work/leaf-resources.yaml"
ask myuser access ip-172-3-2-205 prod

echo "# Through the tunnel, which the leaf closed:"
run tether ssh --cluster=$leaf visitor@mongodb-stage true || true

step "Remove the trust: rm trusted_cluster on the leaf, rm rc on the root"
run leafctl rm trusted_cluster/$root
run rootctl rm rc/$leaf
run rootctl get rc
echo
echo "Demo done: two clusters joined by the guide's commands, a leaf node reached through the root with tether and OpenSSH, the trust disabled and removed."
