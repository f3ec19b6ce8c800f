#!/usr/bin/env bash
# Runs a command inside a fresh network namespace in which Janus 1.1 (streaming
# plugin, HTTP transport) is running, set up as Janus needs it on a machine without
# dummy interfaces:
#   * Janus skips loopback interfaces when gathering ICE candidates, so the namespace
#     gets a veth pair with 127.0.10.1/32 on one end (both ends up, IPv6 off) and Janus's
#     ice_enforce_list names that interface;
#   * the HTTP transport and the mountpoint's RTP ports bind 127.0.0.1;
#   * the sample mountpoint (id 1) takes VP8 on 5004 (pt 100) and Opus on 5002 (pt 111).
# Everything stays on 127.0.0.0/8 inside the namespace.
#
# Usage (as root):  bench/janus-netns.sh COMMAND [ARGS...]
# The command sees JANUS_PID and JANUS_URL in its environment. Janus's log is kept in
# $JANUS_LOG (default: a temp file, printed at the end on failure).
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "janus-netns: run as root (network namespaces)" >&2; exit 1; }
command -v janus >/dev/null || { echo "janus-netns: janus not installed (scripts/install-deps.sh --bench)" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }

ns="ohbench-$$"
work=$(mktemp -d /tmp/ohbench-janus.XXXXXX)
libdir=$(dirname "$(dpkg -L janus | grep '/plugins/libjanus_streaming.so$' | head -1)")/..
janus_log=${JANUS_LOG:-$work/janus.log}
janus_pid=""

cleanup() {
  set +e
  [ -n "$janus_pid" ] && kill "$janus_pid" 2>/dev/null && wait "$janus_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
nsx ip link add ohjanus0 type veth peer name ohjanus1
nsx ip addr add 127.0.10.1/32 dev ohjanus0
nsx ip link set ohjanus0 up
# The subscribers' end: libnice answers checks only from a non-loopback interface.
nsx ip addr add 127.0.10.2/32 dev ohjanus1
nsx ip link set ohjanus1 up
# libnice sends out of its candidate's interface (ohjanus0), so its packets to the
# subscribers really cross the veth: 127/8 there is "martian" unless route_localnet
# is on, its source (our own address) is dropped unless accept_local is on, and
# nobody answers ARP for it, hence static neighbour entries.
for c in all default ohjanus0 ohjanus1 lo; do
  nsx sysctl -qw net.ipv4.conf.$c.route_localnet=1 net.ipv4.conf.$c.rp_filter=0 net.ipv4.conf.$c.accept_local=1
done
mac() { nsx cat "/sys/class/net/$1/address"; }
nsx ip neigh replace 127.0.10.2 lladdr "$(mac ohjanus1)" dev ohjanus0 nud permanent
nsx ip neigh replace 127.0.10.1 lladdr "$(mac ohjanus0)" dev ohjanus1 nud permanent
# Bigger socket buffers: hundreds of subscribers' packets leave in bursts.
nsx sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608 2>/dev/null || true

mkdir -p "$work/conf" "$work/plugins" "$work/transports"
ln -s "$libdir/plugins/libjanus_streaming.so" "$work/plugins/"
ln -s "$libdir/transports/libjanus_http.so" "$work/transports/"
cat > "$work/conf/janus.jcfg" <<CFG
general: {
	configs_folder = "$work/conf"
	plugins_folder = "$work/plugins"
	transports_folder = "$work/transports"
	debug_level = ${JANUS_DEBUG:-3}
	session_timeout = 60
}
media: {
	ipv6 = false
}
nat: {
	ice_enforce_list = "ohjanus0"
}
CFG
cat > "$work/conf/janus.transport.http.jcfg" <<CFG
general: {
	json = "compact"
	base_path = "/janus"
	http = true
	port = 8088
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
}
CFG
cat > "$work/conf/janus.plugin.streaming.jcfg" <<CFG
general: {
}
rtp-sample: {
	type = "rtp"
	id = 1
	description = "OpenHearing loadgen feed (VP8 + Opus)"
	audio = true
	video = true
	audioport = 5002
	audiopt = 111
	audiocodec = "opus"
	audioiface = "127.0.0.1"
	videoport = 5004
	videopt = 100
	videocodec = "vp8"
	videoiface = "127.0.0.1"
}
CFG

# `ip netns exec` execs Janus, so $! is Janus's own pid (what the loadgen reads).
ip netns exec "$ns" janus -C "$work/conf/janus.jcfg" -F "$work/conf" -o -N -L "$janus_log" ${JANUS_ARGS:-} &
janus_pid=$!
for _ in $(seq 100); do
  if nsx curl -sf http://127.0.0.1:8088/janus/info >/dev/null 2>&1; then break; fi
  if ! kill -0 "$janus_pid" 2>/dev/null; then cat "$janus_log" >&2; exit 1; fi
  sleep 0.1
done
nsx curl -sf http://127.0.0.1:8088/janus/info >/dev/null || { echo "janus-netns: Janus did not answer" >&2; cat "$janus_log" >&2; exit 1; }
echo "janus-netns: Janus pid $janus_pid is up in namespace $ns" >&2

set +e
nsx env JANUS_PID="$janus_pid" JANUS_URL=http://127.0.0.1:8088/janus LOADGEN_JANUS_PEER_IP=127.0.10.2 "$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then echo "janus-netns: command failed ($rc); Janus log tail:" >&2; tail -20 "$janus_log" >&2; fi
exit $rc
