#!/usr/bin/env bash
# Installs the system tools Tether's tests talk to for real: redis-server, OpenSSH's sshd
# and ssh (and curl, for the demo), and ip and nft for the tunnel's network-namespace tests. Uses Debian's apt when a tool is missing; does nothing when all are present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v curl >/dev/null 2>&1 || missing+=(curl) # the demo reads /webapi/ping as the guide does
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)    # transport/netns_test.go
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || [ -x /sbin/nft ] || missing+=(nftables) # transport/netns_test.go
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "missing tools: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's postinst scripts try to start the services; policy-rc.d keeps them stopped,
# since the tests start their own instances on spare ports.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
