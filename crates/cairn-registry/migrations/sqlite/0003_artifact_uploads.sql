-- Multipart artifact uploads in progress: each part is a blob; completing an upload
-- concatenates them into the artifact's blob.
CREATE TABLE artifact_uploads (
    id         TEXT    PRIMARY KEY,
    path       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE artifact_upload_parts (
    upload_id   TEXT    NOT NULL REFERENCES artifact_uploads(id) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
