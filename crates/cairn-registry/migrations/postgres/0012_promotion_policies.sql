-- Promotion policies: the rules a version must meet before `alias` of a model that
-- `models` names (a name, or a pattern of `*` and `?`) may point at it; the rules as
-- JSON (cairn_core::policy::Policy).
CREATE TABLE alias_policies (
    models TEXT COLLATE "C" NOT NULL,
    alias  TEXT COLLATE "C" NOT NULL,
    rules  TEXT   NOT NULL,
    set_by TEXT   NOT NULL,
    set_at BIGINT NOT NULL,
    PRIMARY KEY (models, alias)
);

-- Approvals of a version for an alias, one per actor; deleted with the version.
CREATE TABLE version_approvals (
    version_id BIGINT NOT NULL REFERENCES versions(id) ON DELETE CASCADE,
    alias      TEXT COLLATE "C" NOT NULL,
    actor      TEXT   NOT NULL,
    reason     TEXT,
    at         BIGINT NOT NULL,
    PRIMARY KEY (version_id, alias, actor)
);
