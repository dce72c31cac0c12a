#!/usr/bin/env bash
# A node started with --join that the configuration already lists as a
# spare asks to be promoted until it is a voter.  That happens when an
# operator added it as a spare first, or when its promotion gave up during a
# long catch-up (seen with a one-million-member snapshot: the node stayed a
# spare for good, replicating nothing).
set -euo pipefail
# shellcheck source=tests/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

cluster_ports 2
start_member 1 --bootstrap "1=$(raft_addr 1)"
wait_leader
expect_exit 0 cli_on 1 partner add --id coffee --name "Bean Coffee"
expect_exit 0 cli_on 1 member add --id alice
expect_exit 0 cli_on 1 award --partner coffee --member alice --points 500 --txn a1

log "node 2 is added as a spare before it runs"
expect_exit 0 cli_on 1 cluster add --id 2 --raft "$(raft_addr 2)" --role spare
expect_eq "$(role_in_config 2 1)" spare "role of node 2 in the configuration"

log "node 2 starts with --join: it must become a voter and hold the ledger"
start_member 2 --join "$(node_addr 1)"
wait_role 2 voter 30
run cli_on 2 --json balance --member alice --consistent
expect_eq "$(json_get points)" 500 "alice's balance read through node 2"
expect_exit 0 cli_on 1 cluster check --wait-s 20
log "ok"
