-- Which Flex deployment this database is. Its tag goes into the names of the SDP objects
-- Flex makes from then on, so that reconcile can tell an orphan of its own (left by a
-- restored old backup or a lost database) from another deployment's object on the same
-- array. Tasks created before `tagged_since_ms` keep the names they started with.
CREATE TABLE deployment (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    tag              TEXT    NOT NULL,
    tagged_since_ms  BIGINT  NOT NULL
);
