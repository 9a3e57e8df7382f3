"""How one gateway process joins the cluster when its state is on PostgreSQL: its beacon in the nodes registry
(``state.nodes``) and its part of the cluster's channels and hot changes (``state.cluster_sync``), wired to this
process's channel manager, operations and inbox. Apart from ``host`` so the host module keeps start-up, serving
and shutdown only; SQLite state (one machine) has no cluster and gets None."""

from __future__ import annotations

from ._version import __version__
from .channels.manager import ChannelManager
from .channels.operations import Operations
from .host_config import HostConfig
from .messages.inbox import Inbox
from .state.cluster import ChannelRecords
from .state.cluster_sync import ClusterSync
from .state.nodes import NodeBeacon, NodeRegistry, node_id
from .state.postgres import PgDb
from .stores import SecretStore

__all__ = ["join_cluster"]


def join_cluster(config: HostConfig, db: PgDb | None, manager: ChannelManager, operations: Operations,
                 secrets: SecretStore, bus: Inbox, agent_side: bool) -> tuple[NodeBeacon, ClusterSync] | None:
    """This node's beacon and cluster sync, or None without PostgreSQL state (``db`` None or no DSN). Sets the
    manager's and the operations' cluster hooks, and, where agents lease (``agent_side``), wakes the inbox for
    entries appended on other nodes. Nothing is started here (``NodeBeacon``/``ClusterSync`` start with the host)."""
    if db is None or config.state_url.dsn is None:
        return None
    me = node_id(config.home)
    node = NodeBeacon(NodeRegistry(db), me, __version__)
    cluster = ClusterSync(ChannelRecords(db), config.state_url.dsn, operations, secrets, me, config.channels_dir)
    manager.on_switch = cluster.announce_switch
    operations.cluster = cluster
    if agent_side:  # agents lease here: wake them for entries appended on other nodes
        cluster.on_appended = bus.wake
    return node, cluster
