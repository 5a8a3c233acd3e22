-- The sweeper forgets cached vectors no repository's conventions refer to any more (a
-- repository whose manifests changed has a new fingerprint): it looks them up by hash.
CREATE INDEX repo_conventions_fingerprint ON repo_conventions (fingerprint_hash);
CREATE INDEX embeddings_created ON embeddings (created_at);
