-- Which accounts have a client connected to which node of a cluster (issue 19;
-- server/src/store/clients.rs): a push webhook is for an account with no connected client
-- on any node, and nodes never talk to each other. Each node writes its own rows (the
-- accounts that came or went on it) and a heartbeat; a node whose heartbeat is old is taken
-- for gone, with its rows, and swept after an hour. Only Postgres: SQLite runs one node,
-- whose memory answers. (No index by node: a node's rows are deleted by node only when it
-- starts or comes back, and the table holds one row per connected account.)
CREATE TABLE cluster_nodes (
    node      TEXT PRIMARY KEY,
    alive_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE connected_accounts (
    tenant   TEXT NOT NULL,
    account  TEXT NOT NULL,
    node     TEXT NOT NULL REFERENCES cluster_nodes (node) ON DELETE CASCADE,
    PRIMARY KEY (tenant, account, node)
);
