#!/bin/sh
# One-shot job of the redis-cluster compose profile: waits for the nodes, then creates the cluster
# (three masters, one replica each) only when none exists yet, so it can run on every `up`.
#   REDIS_CLUSTER_HOSTS  "host:port host:port ..." (six)   REDISCLI_AUTH  the nodes' password
# Exit 0 when the cluster is (now) ok; 1 when the nodes hold a cluster that is not ok, or some node
# is in one and others are not: that needs a person (redis-cli --cluster check / fix), not a create.
set -eu
hosts=${REDIS_CLUSTER_HOSTS:?set REDIS_CLUSTER_HOSTS}
wait_s=${REDIS_CLUSTER_WAIT_SECONDS:-120}
say() { echo "redis-cluster-init: $*"; }
field() {  # field HOST:PORT NAME: one value of CLUSTER INFO
  redis-cli -h "${1%:*}" -p "${1##*:}" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
cluster_ok() { [ "$(field "$1" cluster_state)" = ok ]; }

# podman-compose 1.0.3 starts this without waiting for the nodes' healthchecks: wait here.
for node in $hosts; do
  n=0
  until redis-cli -h "${node%:*}" -p "${node##*:}" ping 2>/dev/null | grep -q PONG; do
    n=$((n + 1))
    [ "$n" -lt "$wait_s" ] || { say "$node does not answer PONG after $wait_s s (down, or another password)"; exit 1; }
    sleep 1
  done
done

# A node that was never in a cluster knows only itself and serves no slot.
fresh=0 joined=0
for node in $hosts; do
  if [ "$(field "$node" cluster_known_nodes)" = 1 ] && [ "$(field "$node" cluster_slots_assigned)" = 0 ]; then
    fresh=$((fresh + 1))
  else
    joined=$((joined + 1))
  fi
done
first=${hosts%% *}
if [ "$joined" -gt 0 ]; then
  [ "$fresh" = 0 ] || { say "$joined nodes are in a cluster and $fresh in none: not creating one (redis-cli --cluster check $first)"; exit 1; }
  # Exists: after a restart of every node the state turns ok once they have met again.
  n=0
  until cluster_ok "$first"; do
    n=$((n + 1))
    [ "$n" -lt "$wait_s" ] || { say "the cluster exists but is $(field "$first" cluster_state) after $wait_s s (redis-cli --cluster check $first)"; exit 1; }
    sleep 1
  done
  say "cluster exists and is ok ($(field "$first" cluster_known_nodes) nodes): nothing to do"
  exit 0
fi

# CLUSTER MEET takes addresses: resolve the service names.
addresses=""
for node in $hosts; do
  ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
  [ -n "$ip" ] || { say "cannot resolve ${node%:*}"; exit 1; }
  addresses="$addresses $ip:${node##*:}"
done
say "creating the cluster on$addresses"
# shellcheck disable=SC2086 # one argument per node
redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
n=0
until cluster_ok "$first"; do
  n=$((n + 1))
  [ "$n" -lt "$wait_s" ] || { say "created, but not ok after $wait_s s"; exit 1; }
  sleep 1
done
say "cluster created and ok"
